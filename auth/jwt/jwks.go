package jwt

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// jwks is a remote key set. keyfunc looks keys up and refetches the set
// when a kid is unknown (rate limited); the refresh goroutine, owned here
// rather than by jwkset so that close can wait for it, refetches it on a
// timer. Both write the same memory storage, which has its own lock.
type jwks struct {
	url       string
	mem       *jwkset.MemoryJWKSet
	kf        keyfunc.Keyfunc
	transport *http.Transport
	client    *http.Client
	log       *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newJWKS fetches url once under ctx and starts refreshing it every
// interval until close.
func newJWKS(ctx context.Context, url string, interval time.Duration, log *slog.Logger) (*jwks, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	j := &jwks{
		url:       url,
		mem:       jwkset.NewMemoryStorage(),
		transport: tr,
		client:    &http.Client{Transport: tr, Timeout: jwksHTTPTimeout},
		log:       log,
	}
	store, err := j.fetch(ctx)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("jwt: fetch JWKS: %w", err)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{url: store},
		RateLimitWaitMax:  jwksWaitMax,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDInterval), 1),
	})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("jwt: JWKS client: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	j.kf, err = keyfunc.New(keyfunc.Options{Ctx: bg, Storage: client})
	if err != nil {
		cancel()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("jwt: JWKS keyfunc: %w", err)
	}
	j.wg.Add(1)
	go j.refreshLoop(bg, interval)
	return j, nil
}

// fetch downloads the set into j.mem (replacing it only on success) and
// returns the jwkset storage bound to it, which keyfunc refetches through.
// With no RefreshInterval jwkset starts no goroutine of its own.
func (j *jwks) fetch(ctx context.Context) (jwkset.Storage, error) {
	return jwkset.NewStorageFromHTTP(j.url, jwkset.HTTPClientStorageOptions{
		Client:      j.client,
		Ctx:         ctx,
		HTTPTimeout: jwksHTTPTimeout,
		Storage:     j.mem,
	})
}

func (j *jwks) refreshLoop(ctx context.Context, interval time.Duration) {
	defer j.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := j.fetch(ctx); err != nil && ctx.Err() == nil {
				j.log.LogAttrs(ctx, slog.LevelWarn, "jwt: JWKS refresh failed; keeping the cached keys",
					slog.String("url", j.url), slog.Any("error", err))
			}
		}
	}
}

// keys returns the keys of the set that may verify tok, pinned by type: a
// single key when tok names a kid, every key of tok's algorithm otherwise.
// A refetch it triggers runs under the context close cancels.
func (j *jwks) keys(tok *jwt.Token) (any, error) {
	k, err := j.kf.Keyfunc(tok)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnknownKID, err)
	}
	alg := tok.Method.Alg()
	if set, ok := k.(jwt.VerificationKeySet); ok {
		var out jwt.VerificationKeySet
		for _, k := range set.Keys {
			if a, err := algFor(k); err == nil && a == alg {
				out.Keys = append(out.Keys, k)
			}
		}
		if len(out.Keys) == 0 {
			return nil, errAlgNotForKey
		}
		return out, nil
	}
	if a, err := algFor(k); err != nil || a != alg {
		return nil, errAlgNotForKey
	}
	return k, nil
}

// close stops the refresh goroutine, waits for it and drops idle
// connections to the key server.
func (j *jwks) close() {
	j.cancel()
	j.wg.Wait()
	j.transport.CloseIdleConnections()
}
