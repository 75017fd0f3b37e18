package envflag_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/cmd/internal/envflag"
)

type conf struct {
	addr  string
	wait  time.Duration
	n     int
	on    bool
	other string
}

func parse(args []string, env map[string]string, stderr io.Writer) (conf, *envflag.Set, error) {
	var c conf
	s := envflag.New("x", func(k string) string { return env[k] }, stderr)
	s.String(&c.addr, "addr", "X_ADDR", "127.0.0.1:1", "address")
	s.Duration(&c.wait, "wait", "X_WAIT", "1s", "wait")
	s.Int(&c.n, "n", "X_N", "3", "count")
	s.Bool(&c.on, "on", "X_ON", "false", "switch")
	s.String(&c.other, "other", "X_OTHER", "", "other")
	return c, s, s.Parse(args)
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want conf
	}{
		{"defaults", nil, nil, conf{"127.0.0.1:1", time.Second, 3, false, ""}},
		{"environment", nil, map[string]string{"X_ADDR": "a:2", "X_WAIT": "2m", "X_N": "0", "X_ON": "true"}, conf{"a:2", 2 * time.Minute, 0, true, ""}},
		{"flag beats environment", []string{"-addr", "b:3", "-n", "7", "-on=false"}, map[string]string{"X_ADDR": "a:2", "X_N": "1", "X_ON": "true"}, conf{"b:3", time.Second, 7, false, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := parse(tt.args, tt.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad duration in env", nil, map[string]string{"X_WAIT": "soon"}, `X_WAIT="soon"`},
		{"negative count in env", nil, map[string]string{"X_N": "-1"}, `X_N="-1"`},
		{"bad switch in env", nil, map[string]string{"X_ON": "maybe"}, `X_ON="maybe"`},
		{"zero duration flag", []string{"-wait", "0s"}, nil, "-wait must be positive"},
		{"negative count flag", []string{"-n", "-2"}, nil, "-n must be 0 or more"},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments: serve"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(tt.args, tt.env, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestHelpDocumentsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	_, s, err := parse([]string{"-h"}, nil, &out)
	if !errors.Is(err, envflag.ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	if len(s.Vars()) != 5 {
		t.Fatalf("Vars() = %v", s.Vars())
	}
	for _, v := range s.Vars() {
		if !strings.Contains(out.String(), "-"+v.Flag) || !strings.Contains(out.String(), v.Env) {
			t.Errorf("usage lacks -%s / %s:\n%s", v.Flag, v.Env, out.String())
		}
	}
}
