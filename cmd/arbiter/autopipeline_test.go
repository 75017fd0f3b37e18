package main

import (
	"io"
	"testing"
)

func TestRedisAutoPipelineSetting(t *testing.T) {
	for _, tc := range []struct {
		value            string
		tracing, want    bool
		wantConfigErrors bool
	}{
		{value: "", tracing: false, want: true}, // the default: auto
		{value: "", tracing: true, want: false},
		{value: "on", tracing: true, want: true},
		{value: "off", tracing: false, want: false},
		{value: "auto", tracing: false, want: true},
		{value: "yes", wantConfigErrors: true},
	} {
		env := map[string]string{}
		if tc.value != "" {
			env["ARBITER_REDIS_AUTOPIPELINE"] = tc.value
		}
		cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.check(); (err != nil) != tc.wantConfigErrors {
			t.Errorf("ARBITER_REDIS_AUTOPIPELINE=%q: check() = %v", tc.value, err)
			continue
		}
		if tc.wantConfigErrors {
			continue
		}
		if got := cfg.autoPipeline(tc.tracing); got != tc.want {
			t.Errorf("ARBITER_REDIS_AUTOPIPELINE=%q, tracing %v: autopipeline %v, want %v", tc.value, tc.tracing, got, tc.want)
		}
	}
}
