// Package redisopt turns Herald's Redis settings (a standalone URL or
// Redis Cluster seed addresses) into rueidis client options, so the
// broker and the session store connect the same way.
package redisopt

import (
	"errors"

	"github.com/redis/rueidis"
)

// Per-connection sizes, see Options.
const (
	ioBuffer  = 64 << 10
	ringScale = 8
)

// Options returns client options for a standalone Redis at url
// (redis://[user:password@]host:port/db, rediss:// for TLS) or a cluster
// seeded by addrs, exactly one of the two. Client-side caching is off:
// Herald reads what other nodes write.
func Options(url string, addrs []string, password string) (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	switch {
	case url != "" && len(addrs) > 0:
		return opt, errors.New("set URL or ClusterAddrs, not both")
	case url != "":
		o, err := rueidis.ParseURL(url)
		if err != nil {
			return opt, err
		}
		opt = o
		opt.ForceSingleClient = true
	case len(addrs) > 0:
		opt.InitAddress = addrs
		opt.Password = password
		opt.ShuffleInit = true
	default:
		return opt, errors.New("URL or ClusterAddrs is required")
	}
	opt.DisableCache = true
	// rueidis sizes every connection for bulk transfers: two 0.5 MiB
	// buffers and a ring of 1,024 command slots, on each of up to four
	// connections per client. Herald's commands and messages are small.
	opt.ReadBufferEachConn = ioBuffer
	opt.WriteBufferEachConn = ioBuffer
	opt.RingScaleEachConn = ringScale
	return opt, nil
}
