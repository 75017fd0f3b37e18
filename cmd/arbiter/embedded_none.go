//go:build noembedded

package main

import "errors"

// startEmbedded refuses: this build (-tags noembedded, the production
// image's) leaves miniredis out, so an empty ARBITER_REDIS_URL is a
// mistake, never a quiet in-memory store that loses every grant at exit.
func startEmbedded() (addr string, stop func(), err error) {
	return "", nil, errors.New("this build has no embedded store; set ARBITER_REDIS_URL")
}
