package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// bodySizes are the response sizes the backend serves, at /<size>.
var bodySizes = []int{100, 10 << 10}

// backendHandler answers GET /<size> with a fixed body of that many bytes.
func backendHandler(sizes []int) http.Handler {
	bodies := map[string][]byte{}
	lengths := map[string][]string{}
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		key := "/" + strconv.Itoa(n)
		bodies[key] = b
		lengths[key] = []string{strconv.Itoa(n)}
	}
	ctype := []string{"application/octet-stream"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"] = ctype
		h["Content-Length"] = lengths[r.URL.Path]
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// backendMain is "loadbench backend": the fast Go upstream. It serves until
// SIGTERM or until its parent is gone (-max-lifetime bounds it anyway).
func backendMain(args []string) error {
	fs := flag.NewFlagSet("loadbench backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "plain HTTP listen address")
	tlsAddr := fs.String("tls-addr", "", "TLS listen address (HTTP/1.1 and h2)")
	certPath := fs.String("cert", "", "certificate PEM")
	keyPath := fs.String("key", "", "key PEM")
	maxLife := fs.Duration("max-lifetime", 3*time.Hour, "exit after this long whatever happens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h := backendHandler(bodySizes)
	errLog := log.New(io.Discard, "", 0)
	mk := func() *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errLog}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	plain := mk()
	errc := make(chan error, 2)
	go func() { errc <- plain.Serve(ln) }()
	var secure *http.Server
	if *tlsAddr != "" {
		cert, err := tls.LoadX509KeyPair(*certPath, *keyPath)
		if err != nil {
			return err
		}
		tln, err := net.Listen("tcp", *tlsAddr)
		if err != nil {
			return err
		}
		secure = mk()
		secure.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { errc <- secure.ServeTLS(tln, "", "") }()
	}
	fmt.Fprintf(os.Stderr, "backend serving on %s (tls %s)\n", *addr, *tlsAddr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(*maxLife):
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	plain.Close()
	if secure != nil {
		secure.Close()
	}
	return nil
}
