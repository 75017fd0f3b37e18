package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the API's OpenAPI 3.1 contract. openapi_test.go validates
// the requests and responses of a full flow against it, so it cannot drift
// from the handlers.
//
//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI 3.1 document served at /openapi.yaml.
func OpenAPISpec() []byte { return append([]byte(nil), openAPISpec...) }

// handleOpenAPI: GET /openapi.yaml, public like the JWKS.
func handleOpenAPI() echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/yaml", openAPISpec)
	}
}
