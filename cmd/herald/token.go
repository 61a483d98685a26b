package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// runToken prints a development token signed with the configured secret,
// so that trying authentication takes a minute.
func runToken(args []string, stdout, stderr io.Writer) int {
	f := newEnvFlags("token", stdout)
	secret := f.String("jwt-secret", "", "HS256 secret the server verifies with (at least 32 bytes)")
	maxLifetime := f.Duration("jwt-max-lifetime", jwtauth.DefaultMaxLifetime, "the server's --jwt-max-lifetime: a longer --ttl is refused, since the server would reject the token (lifetime_too_long)")
	f.envs["sub"] = "-"
	sub := f.fs.String("sub", "", "user id (the sub claim); required")
	rooms := f.fs.String("rooms", "", "comma-separated room patterns the user may join (e.g. 'chat:*')")
	publish := f.fs.String("publish", "", "comma-separated room patterns the user may publish to (default: the --rooms patterns)")
	ttl := f.fs.Duration("ttl", time.Hour, "token lifetime")
	issuer := f.fs.String("issuer", "", "iss claim")
	audience := f.fs.String("audience", "", "aud claim")
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
		err = errors.New("no secret: set HERALD_JWT_SECRET (or --jwt-secret) to the server's secret")
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
	if *issuer != "" {
		opts = append(opts, jwtauth.WithIssuer(*issuer))
	}
	if *audience != "" {
		opts = append(opts, jwtauth.WithAudience(*audience))
	}
	tok, err := jwtauth.Sign([]byte(*secret), *sub, splitList(*rooms), pub, *ttl, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "herald token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
