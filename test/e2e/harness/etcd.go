package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// etcdKV talks to etcd's v3 KV API through its JSON gateway, which etcd
// serves on the client URL next to gRPC. The JSON form is etcd's documented
// API (the same messages as gRPC, bytes as base64, int64 as strings) and
// keeps the etcd client and gRPC out of the main module; the harness only
// needs get, a compare-and-put and delete.
type etcdKV struct {
	base string // http://127.0.0.1:<client port>
	hc   *http.Client
}

func newEtcdKV(base string) *etcdKV {
	return &etcdKV{base: base, hc: &http.Client{Timeout: 10 * time.Second}}
}

// int64s is an int64 that the gateway writes as a JSON string.
type int64s int64

func (n *int64s) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*n = int64s(v)
	return err
}

type etcdHeader struct {
	Revision int64s `json:"revision"`
}

type etcdKeyValue struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value"`
	ModRevision int64s `json:"mod_revision"`
}

// get returns the value stored at key and its mod revision (0 if absent).
func (e *etcdKV) get(ctx context.Context, key string) (value []byte, modRev int64, err error) {
	var resp struct {
		Header etcdHeader     `json:"header"`
		Kvs    []etcdKeyValue `json:"kvs"`
	}
	if err := e.call(ctx, "/v3/kv/range", map[string]any{"key": []byte(key)}, &resp); err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, int64(resp.Kvs[0].ModRevision), nil
}

// putIfModRev writes value at key if the key's mod revision is still modRev
// (0: the key must not exist), as the API server's optimistic concurrency
// does. It returns the new revision, or ok=false when the key changed.
func (e *etcdKV) putIfModRev(ctx context.Context, key string, modRev int64, value []byte) (rev int64, ok bool, err error) {
	req := map[string]any{
		"compare": []map[string]any{{
			"target":       "MOD",
			"result":       "EQUAL",
			"key":          []byte(key),
			"mod_revision": strconv.FormatInt(modRev, 10),
		}},
		"success": []map[string]any{{
			"request_put": map[string]any{"key": []byte(key), "value": value},
		}},
	}
	var resp struct {
		Header    etcdHeader `json:"header"`
		Succeeded bool       `json:"succeeded"`
	}
	if err := e.call(ctx, "/v3/kv/txn", req, &resp); err != nil {
		return 0, false, err
	}
	return int64(resp.Header.Revision), resp.Succeeded, nil
}

// delete removes key and returns the revision of the deletion and whether
// the key existed.
func (e *etcdKV) delete(ctx context.Context, key string) (rev int64, existed bool, err error) {
	var resp struct {
		Header  etcdHeader `json:"header"`
		Deleted int64s     `json:"deleted"`
	}
	if err := e.call(ctx, "/v3/kv/deleterange", map[string]any{"key": []byte(key)}, &resp); err != nil {
		return 0, false, err
	}
	return int64(resp.Header.Revision), resp.Deleted > 0, nil
}

// call POSTs req as JSON ([]byte fields become base64, as the gateway
// expects) and decodes the answer into resp.
func (e *etcdKV) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := e.hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s: %s", path, hresp.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("etcd %s: decode %q: %w", path, data, err)
	}
	return nil
}
