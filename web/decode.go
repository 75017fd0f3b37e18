package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// decode reads a JSON body strictly: at most MaxBodyBytes (beyond that 413
// payload_too_large), one value, only known members, and a JSON content
// type when one is given.
//
// Strict means every reader of the body sees the same request, so it is
// decoded with encoding/json/v2's semantics (github.com/go-json-experiment/
// json), not encoding/json's: a member named twice (even spelt with
// escapes) is an error, not "the last one wins"; names match their fields
// exactly, not case-insensitively; invalid UTF-8 is an error, not U+FFFD.
// With encoding/json, {"product":"credit_card","product":"personal_loan"}
// placed a loan hold while a gateway that reads the first key saw a card.
func decode(c echo.Context, v any) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return validation.Errorf(validation.ReasonInvalidRequest, "Content-Type must be application/json, not %q", ct)
		}
	}
	body := http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
	// Duplicate names and invalid UTF-8 are errors by v2's defaults, and
	// UnmarshalRead refuses anything after the value; unknown members need
	// asking for.
	if err := json.UnmarshalRead(body, v, json.RejectUnknownMembers(true)); err != nil {
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *jsontext.SyntacticError
	var semantic *json.SemanticError
	switch {
	case errors.As(err, &tooBig):
		return validation.Errorf(reasonPayloadTooLarge, "the body is larger than %d KiB; nothing was done", MaxBodyBytes>>10)
	case errors.Is(err, jsontext.ErrDuplicateName):
		return validation.Errorf(validation.ReasonInvalidRequest, "member %s appears more than once", memberOf(err))
	case errors.Is(err, json.ErrUnknownName):
		return validation.Errorf(validation.ReasonInvalidRequest, "unknown member %s (names are case-sensitive)", memberOf(err))
	case errors.As(err, &syntax) && syntax.ByteOffset == 0 && errors.Is(err, io.ErrUnexpectedEOF):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body is not one valid JSON value (UTF-8, nothing after it)")
	case errors.As(err, &semantic) && semantic.JSONPointer != "":
		return validation.Errorf(validation.ReasonInvalidRequest, "member %s must be a JSON %s", memberOf(err), kindOf(semantic))
	case errors.As(err, &semantic):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body must be a JSON object")
	}
	return validation.Errorf(validation.ReasonInvalidRequest, "the body is not valid: %s", err.Error())
}

// memberOf names, quoted, the member a decoding error is about.
func memberOf(err error) string {
	var syntax *jsontext.SyntacticError
	var semantic *json.SemanticError
	var p jsontext.Pointer
	switch {
	case errors.As(err, &syntax):
		p = syntax.JSONPointer
	case errors.As(err, &semantic):
		p = semantic.JSONPointer
	}
	name := p.LastToken()
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return strconv.Quote(name)
}

// kindOf says what a member should have been: a string for Go strings and
// times (RFC 3339), else the Go type's name.
func kindOf(e *json.SemanticError) string {
	if e.GoType == nil {
		return "value of another type"
	}
	switch e.GoType.String() {
	case "string":
		return "string"
	case "time.Time":
		return "string holding an RFC 3339 time"
	}
	return e.GoType.String()
}
