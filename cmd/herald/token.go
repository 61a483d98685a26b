package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// runToken prints a development token signed with the configured secret,
// so that trying authentication takes a minute. It reads the server's
// settings (the secret, issuer, audience and longest lifetime) from the
// same flags, HERALD_* variables and --config file as serve, so that the
// token it prints is one that server accepts.
func runToken(args []string, stdout, stderr io.Writer) int {
	f := newEnvFlags("token", stdout)
	f.shared = serveFlagSet() // the file is serve's: its other keys are not ours
	f.String("config", "", "serve's YAML config file: jwt-secret, jwt-issuer, jwt-audience and jwt-max-lifetime are read from it as serve reads them (its other keys are skipped)")
	secret := f.String("jwt-secret", "", "HS256 secret the server verifies with (at least 32 bytes)")
	maxLifetime := f.Duration("jwt-max-lifetime", jwtauth.DefaultMaxLifetime, "the server's --jwt-max-lifetime: a longer --ttl is refused, since the server would reject the token (lifetime_too_long)")
	srvIssuer := f.String("jwt-issuer", "", "the server's --jwt-issuer: the token's iss claim unless --issuer is given")
	srvAudience := f.String("jwt-audience", "", "the server's --jwt-audience: the token's aud claim unless --audience is given")
	f.envs["sub"] = "-"
	sub := f.fs.String("sub", "", "user id (the sub claim); required")
	rooms := f.fs.String("rooms", "", "comma-separated room patterns the user may join (e.g. 'chat:*')")
	publish := f.fs.String("publish", "", "comma-separated room patterns the user may publish to (default: the --rooms patterns)")
	ttl := f.fs.Duration("ttl", time.Hour, "token lifetime")
	issuer := f.fs.String("issuer", "", "iss claim (default: --jwt-issuer)")
	audience := f.fs.String("audience", "", "aud claim (default: --jwt-audience)")
	for _, n := range []string{"rooms", "publish", "ttl", "issuer", "audience"} {
		f.envs[n] = "-"
	}
	err := f.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && *sub == "" {
		err = errors.New("--sub is required")
	}
	if err == nil && *secret == "" {
		err = errors.New("no secret: set HERALD_JWT_SECRET (or --jwt-secret, or jwt-secret in the file given to --config) to the server's secret")
	}
	if err == nil && *ttl > *maxLifetime {
		// Refused rather than warned: a token the server rejects is of no
		// use, and the refusal says how to match a server configured longer.
		err = fmt.Errorf("--ttl %s is longer than the server accepts (%s %s): it would reject the token "+
			"with lifetime_too_long; if your server runs with a longer --jwt-max-lifetime, give the same here "+
			"(or set HERALD_JWT_MAX_LIFETIME for both)", shortDuration(ttl.String()), f.origin("jwt-max-lifetime"), shortDuration(maxLifetime.String()))
	}
	if err != nil {
		return usageFailed(stderr, "token", err)
	}
	pub := splitList(*publish)
	if *publish == "" {
		pub = splitList(*rooms)
	}
	var opts []jwtauth.SignOption
	if iss := cmp.Or(*issuer, *srvIssuer); iss != "" {
		opts = append(opts, jwtauth.WithIssuer(iss))
	}
	if aud := cmp.Or(*audience, *srvAudience); aud != "" {
		opts = append(opts, jwtauth.WithAudience(aud))
	}
	tok, err := jwtauth.Sign([]byte(*secret), *sub, splitList(*rooms), pub, *ttl, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "herald token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
