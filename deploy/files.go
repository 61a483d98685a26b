package deploy

import "embed"

// Nginx holds the nginx configurations of deploy/nginx, so that tools
// (herald bench rolling) run the file users deploy, not a copy of it.
//
//go:embed nginx/*.conf
var Nginx embed.FS
