package channel

import (
	_ "embed"
	"net/http"
)

//go:embed client/presence.js
var clientJS []byte

// ClientScript serves presence.js, the package's browser client: an ES
// module with Socket, Channel, Push and Presence. See README.md for its API.
func ClientScript() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(clientJS)
	})
}
