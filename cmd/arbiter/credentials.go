package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The Redis URL carries the Redis password, and operators paste passwords
// into it unencoded. Go's URL parser then quotes the URL, or a piece of
// it, in its error ("parse "redis://arbiter:s3cr": invalid port"), and a
// password cut short by an unencoded "/", "?" or "#" may even parse, its
// start taken for a port. So the credentials are found lexically (every
// character between "://" and a seed's last "@"), checked against what the
// parser made of them, and no error quoting any piece of them is shown.

// urlSpecial are the characters that end a piece of a password: URL
// delimiters and the seed list's comma.
const urlSpecial = ":,@/%?#;&=+ \t"

// splitSeeds splits a comma-separated list of seeds. A comma may also sit
// in a seed's password: a part holding "@" without "://" continues the
// credentials of the URL seed before it, so it is joined back to it with
// every part in between. A host:port seed never holds "@".
func splitSeeds(raw string) []string {
	var seeds []string
	lastURL := -1
	for _, p := range strings.Split(raw, ",") {
		switch {
		case strings.Contains(p, "://"):
			lastURL = len(seeds)
			seeds = append(seeds, p)
		case strings.Contains(p, "@") && lastURL >= 0:
			seeds = append(seeds[:lastURL], strings.Join(append(seeds[lastURL:], p), ","))
		default:
			seeds = append(seeds, p)
		}
	}
	return seeds
}

// writtenUserinfo returns a seed's user information as written: between
// "://" (or the start) and the seed's last "@"; ok is false without "@".
func writtenUserinfo(seed string) (userinfo string, start int, ok bool) {
	if i := strings.Index(seed, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(seed, "@")
	if at < start {
		return "", 0, false
	}
	return seed[start:at], start, true
}

// checkCredentials fails unless the user name and password the parser
// found in seed are exactly those written in it.
func checkCredentials(seed, user, password string) error {
	written, _, ok := writtenUserinfo(seed)
	if !ok {
		if user != "" || password != "" {
			return errCredentialsMisparsed
		}
		return nil
	}
	decoded, err := url.PathUnescape(written)
	if err != nil {
		return errCredentialsMisparsed
	}
	wantUser, wantPassword, hasPassword := strings.Cut(decoded, ":")
	if !hasPassword {
		wantUser, wantPassword = decoded, "" // go-redis: a lone user info is a user name
	}
	if user != wantUser || password != wantPassword {
		return errCredentialsMisparsed
	}
	return nil
}

var errCredentialsMisparsed = errors.New(`its user name and password do not parse as written: ` +
	`percent-encode the password's / ? # % (%2F %3F %23 %25)`)

// secretPieces lists what no message may quote: each seed's written user
// information (but a user name before ":"), decoded or not, and each of its
// pieces between URL delimiters.
func secretPieces(raw string) []string {
	var out []string
	for _, seed := range splitSeeds(raw) {
		written, _, ok := writtenUserinfo(seed)
		if !ok {
			continue
		}
		forms := []string{written}
		if d, err := url.PathUnescape(written); err == nil && d != written {
			forms = append(forms, d)
		}
		for _, f := range forms {
			secret := f
			if _, pw, ok := strings.Cut(f, ":"); ok {
				secret = pw
			}
			if secret == "" {
				continue
			}
			out = append(out, secret)
			out = append(out, strings.FieldsFunc(secret, func(r rune) bool { return strings.ContainsRune(urlSpecial, r) })...)
		}
	}
	return out
}

// maskedURL is raw with every seed's password replaced by "*****".
func maskedURL(raw string) string {
	seeds := splitSeeds(raw)
	for i, seed := range seeds {
		written, start, ok := writtenUserinfo(seed)
		if !ok {
			continue
		}
		user, _, hasPassword := strings.Cut(written, ":")
		if !hasPassword {
			user = "" // a lone user info may well be a password
		}
		seeds[i] = seed[:start] + user + ":*****" + seed[start+len(written):]
	}
	return strings.Join(seeds, ",")
}

// hideCredentials returns err unless its message quotes a piece of the
// password in raw; then an error that names the URL with its password
// masked and says what to do instead.
func hideCredentials(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, p := range secretPieces(raw) {
		if strings.Contains(msg, p) {
			return fmt.Errorf("ARBITER_REDIS_URL %s is not valid (the parser's message is not shown: it would quote the password); "+
				"check the URL's form and percent-encode the password's / ? # %% (%%2F %%3F %%23 %%25)", maskedURL(raw))
		}
	}
	return err
}
