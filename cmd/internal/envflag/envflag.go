// Package envflag binds each command-line flag of a binary to an
// environment variable: a flag given on the command line wins over its
// variable, which wins over the default. Every binary of this module reads
// its configuration through it, so all of them behave and document
// themselves (-h) the same way.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse when -h or -help was given; the usage has
// been printed.
var ErrHelp = flag.ErrHelp

// Set is a flag set whose defaults come from the environment.
type Set struct {
	fs     *flag.FlagSet
	getenv func(string) string
	err    error // the first malformed environment value
	vars   []Var
	checks []func() error
	cmds   []string // usage lines of the binary's subcommands, for -h
}

// Var names one setting: its flag and its environment variable.
type Var struct{ Flag, Env string }

// New returns a Set for the named binary, reading variables with getenv and
// writing usage and errors to stderr.
func New(name string, getenv func(string) string, stderr io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &Set{fs: fs, getenv: getenv}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n", name)
		for _, c := range s.cmds {
			fmt.Fprintf(stderr, "       %s %s\n", name, c)
		}
		fmt.Fprintf(stderr, "\nEvery flag can also be set by its environment variable; a flag wins.\n")
		fs.PrintDefaults()
	}
	return s
}

// Commands lists the binary's subcommands in -h, one usage line each
// (without the binary's name), such as "keygen -o FILE   write a key".
func (s *Set) Commands(usage ...string) { s.cmds = append(s.cmds, usage...) }

// def returns the environment's value of env, or def.
func (s *Set) def(env, def string) string {
	if v := s.getenv(env); v != "" {
		return v
	}
	return def
}

func (s *Set) add(name, env, usage string) string {
	s.vars = append(s.vars, Var{Flag: name, Env: env})
	return fmt.Sprintf("%s (env %s)", usage, env)
}

func (s *Set) fail(env, v, want string) {
	if s.err == nil {
		s.err = fmt.Errorf("%s=%q: want %s", env, v, want)
	}
}

// String defines a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, s.def(env, def), s.add(name, env, usage))
}

// Duration defines a duration setting, which must end up positive.
func (s *Set) Duration(p *time.Duration, name, env, def, usage string) {
	v := s.def(env, def)
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fail(env, v, "a duration such as 500ms or 2m")
	}
	s.fs.DurationVar(p, name, d, s.add(name, env, usage))
	s.checks = append(s.checks, func() error {
		if *p <= 0 {
			return fmt.Errorf("-%s must be positive", name)
		}
		return nil
	})
}

// Int defines a count setting, which must end up 0 or more.
func (s *Set) Int(p *int, name, env, def, usage string) {
	v := s.def(env, def)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		s.fail(env, v, "a whole number, 0 or more")
	}
	s.fs.IntVar(p, name, n, s.add(name, env, usage))
	s.checks = append(s.checks, func() error {
		if *p < 0 {
			return fmt.Errorf("-%s must be 0 or more", name)
		}
		return nil
	})
}

// Bool defines a switch.
func (s *Set) Bool(p *bool, name, env, def, usage string) {
	v := s.def(env, def)
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.fail(env, v, "true or false")
	}
	s.fs.BoolVar(p, name, b, s.add(name, env, usage))
}

// Parse parses args (without the program name). It returns ErrHelp after
// printing the usage for -h, the first malformed environment value, an
// error for stray arguments, and the first setting out of range.
func (s *Set) Parse(args []string) error {
	if s.err != nil {
		return s.err
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(s.fs.Args(), " "))
	}
	for _, check := range s.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// Vars lists every setting defined, in order.
func (s *Set) Vars() []Var { return s.vars }
