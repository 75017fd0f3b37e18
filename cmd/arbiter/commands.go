package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/crypto/bcrypt"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/tokens"
)

// The subcommands make what production mode requires and demo mode does
// without: a signing key (ARBITER_SIGNING_KEY) and the hashes of the
// clients file (ARBITER_CLIENTS), so that no raw key or password has to be
// written into a file, and no other tool has to be trusted to hash them;
// and migrate (migrate.go) prepares a store for this release.

// commandUsage is what -h lists besides the service's flags.
var commandUsage = []string{
	"keygen -o FILE [-pub FILE] [-force]   write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) and print its kid",
	"hash [-password] < SECRET             read one API key (or, with -password, an agent password) on standard input and print its clients-file line",
	"migrate [-dry-run] [-batch N]         rewrite what earlier releases stored in the encodings this one reads (Redis from ARBITER_REDIS_URL and the other ARBITER_REDIS_* variables)",
}

// runCommand runs the subcommand args[0] when it names one; ok is false
// when it does not, and the service runs.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (ok bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case "keygen":
		return true, keygen(args[1:], stdout, stderr)
	case "hash":
		return true, hashSecret(args[1:], stdin, stdout, stderr)
	case "migrate":
		return true, migrate(ctx, args[1:], getenv, stdout, stderr)
	}
	return false, nil
}

// commandFlags is the flag set of a subcommand: no environment variables,
// since its input is a one-off.
func commandFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("arbiter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseCommand parses a subcommand's flags; -h returns errHelp, as the
// service's does, and stray arguments are an error.
func parseCommand(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments: %v", fs.Name(), fs.Args())
	}
	return nil
}

// keygen writes a fresh signing key to -o and prints the kid its tokens
// and the JWKS will carry.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := commandFlags("keygen", stderr)
	out := fs.String("o", "", "the key file to write (required)")
	force := fs.Bool("force", false, "replace the files if they exist")
	pub := fs.String("pub", "", "also write the public key (PKIX PEM, for ARBITER_VERIFY_KEYS during a rotation) to this file")
	if err := parseCommand(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("keygen: -o FILE is required")
	}
	if *pub == *out {
		return errors.New("keygen: -pub must name another file than -o")
	}
	if _, err := os.Lstat(*pub); *pub != "" && !*force && err == nil {
		// Checked first, so that a refusal writes neither file.
		return fmt.Errorf("keygen: %s exists: not replacing it (add -force to replace it)", *pub)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		return err
	}
	pem, err := tokens.MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	public := key.Public().(ed25519.PublicKey)
	pubPEM, err := tokens.MarshalPublicKeyPEM(public)
	if err != nil {
		return err
	}
	if err := writeSecretFile(*out, pem, *force); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (Ed25519, PKCS#8 PEM, mode 0600)\n", *out)
	if *pub != "" {
		// Not secret, but written the same way: never over a file by mistake.
		if err := writeSecretFile(*pub, pubPEM, *force); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s (its public key, PKIX PEM)\n", *pub)
	}
	fmt.Fprintf(stdout, "kid: %s\n", tokens.KeyID(public))
	return nil
}

// writeSecretFile writes data to path, readable by its owner only. Without
// force an existing file is an error and is left as it was; with force it
// is replaced whole (a new file renamed over it), so its old mode is not
// kept and a reader never sees half a key.
func writeSecretFile(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: not replacing a key that may be in use (add -force to replace it)", path)
		}
		if err != nil {
			return err
		}
		return writeAndClose(f, data)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".keygen-*") // mode 0600
	if err != nil {
		return err
	}
	if err := writeAndClose(f, data); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// writeAndClose writes data to f, syncs and closes it, returning the
// first error.
func writeAndClose(f *os.File, data []byte) error {
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// maxSecret bounds what hash reads: a key or a password, not a file.
const maxSecret = 4 << 10

// hashSecret reads one secret on stdin and prints the line of the clients
// file that stores it: key_sha256 for an API key, password_bcrypt (at the
// cost the branch UI expects) for an agent password. The secret itself is
// never printed.
func hashSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := commandFlags("hash", stderr)
	password := fs.Bool("password", false, "the secret is a branch agent's password: print password_bcrypt instead of key_sha256")
	if err := parseCommand(fs, args); err != nil {
		return err
	}
	secret, err := readSecret(stdin)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if *password {
		h, err := bcrypt.GenerateFromPassword(secret, bcrypt.DefaultCost)
		if err != nil {
			return fmt.Errorf("hash: %w", err) // longer than bcrypt's 72 bytes
		}
		fmt.Fprintf(stdout, "password_bcrypt: %q\n", h)
		return nil
	}
	if len(secret) < clientauth.MinKeyLength {
		return fmt.Errorf("hash: the API key is %d characters; a clients file takes %d or more", len(secret), clientauth.MinKeyLength)
	}
	sum := sha256.Sum256(secret)
	fmt.Fprintf(stdout, "key_sha256: %s\n", hex.EncodeToString(sum[:]))
	return nil
}

// readSecret reads stdin whole and drops one trailing newline (LF or CRLF),
// the one echo and most editors add; anything else is part of the secret.
// Several lines are an error: one secret at a time.
func readSecret(stdin io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(data) > maxSecret {
		return nil, fmt.Errorf("standard input holds more than %d bytes: pipe one key or password", maxSecret)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	switch {
	case len(data) == 0:
		return nil, errors.New("standard input is empty: pipe the key or password, e.g. printf %s \"$KEY\" | arbiter hash")
	case bytes.ContainsAny(data, "\r\n"):
		return nil, errors.New("standard input holds more than one line: pipe one key or password at a time")
	}
	return data, nil
}
