// Package web is arbiter's HTTP API, served with echo: the only package that
// imports echo. Handlers decode strictly, call the domain (package
// validation) and the credential issuer (package tokens) through small
// interfaces, and return errors; one table in errors.go turns every error
// into an application/problem+json response with a stable reason code.
package web
