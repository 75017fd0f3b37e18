package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
)

// decode reads a JSON body strictly: at most MaxBodyBytes, no unknown
// fields, one value, and a JSON content type when one is given.
func decode(c echo.Context, v any) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return validation.Errorf(validation.ReasonInvalidRequest, "Content-Type must be application/json, not %q", ct)
		}
	}
	body := http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return validation.Errorf(validation.ReasonInvalidRequest, "the body holds more than one JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body is larger than %d KiB", MaxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return validation.Errorf(validation.ReasonInvalidRequest, "the body is not valid JSON")
	case errors.As(err, &typ):
		return validation.Errorf(validation.ReasonInvalidRequest, "field %q must be a JSON %s", typ.Field, typ.Type.Kind())
	}
	// Unknown fields and the like: json's message names the field.
	return validation.Errorf(validation.ReasonInvalidRequest, "%s", err.Error())
}
