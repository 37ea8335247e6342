package demo

import (
	"encoding/json"
	"net/http"
	"os"
	"sort"
)

// Echo answers every request with a JSON Reply describing it. The WebSocket
// or streaming behaviour of real applications is out of scope; Echo exists
// so that a person or a test can see exactly what the proxy forwarded.
type Echo struct {
	// Name identifies the backend in replies ("served by").
	Name string
}

// Reply is the JSON body Echo writes.
type Reply struct {
	Backend string              `json:"backend"`
	Pod     string              `json:"pod,omitempty"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Proto   string              `json:"proto"`
	Headers map[string][]string `json:"headers"`
}

// ServeHTTP implements http.Handler.
func (e Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := Reply{
		Backend: e.Name,
		Pod:     os.Getenv("POD_NAME"),
		Method:  r.Method,
		Host:    r.Host,
		Path:    r.RequestURI,
		Proto:   r.Proto,
		Headers: make(map[string][]string, len(r.Header)),
	}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		reply.Headers[k] = r.Header[k]
	}
	body, err := json.MarshalIndent(reply, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Backend", e.Name)
	_, _ = w.Write(append(body, '\n'))
}
