package connpool

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// past is a deadline that has passed: it ends a blocked read or write.
var past = time.Unix(1, 0)

// send writes the request on c and reads the response's head; the body
// gives c back to the pool once read to its end.
func (t *Transport) send(req *http.Request, c *conn) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(past) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}

	// Like net/http's Transport, ask for gzip unless the caller chose an
	// encoding, and undo it for the caller.
	gz := req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == "" && req.Method != http.MethodHead
	out := req
	if gz {
		out = new(http.Request)
		*out = *req
		out.Header = req.Header.Clone()
		out.Header.Set("Accept-Encoding", "gzip")
	}
	w := writers.Get().(*bufio.Writer)
	w.Reset(c)
	err := out.Write(w)
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	writers.Put(w)
	reused := !c.since.IsZero()
	if err != nil {
		if reused {
			err = errors.Join(errStale, err)
		}
		return fail(err)
	}

	r := readers.Get().(*bufio.Reader)
	release := func() { r.Reset(nil); readers.Put(r) }
	c.lim.n = maxHeaderBytes
	r.Reset(&c.lim)
	if _, err := r.Peek(1); err != nil {
		release()
		if reused {
			err = errors.Join(errStale, err)
		}
		return fail(err)
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(r, req)
		if err != nil {
			release()
			return fail(err)
		}
		// An informational answer (103 Early Hints) precedes the response.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close()
	}
	c.lim.n = -1
	b := &body{t: t, c: c, r: r, rc: resp.Body, stop: stop,
		ctx: ctx, keep: !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	resp.Body = b
	if b.rc == http.NoBody { // nothing to read: the connection is free now
		b.eof = true
		b.finish()
		resp.Body = http.NoBody
		return resp, nil
	}
	if gz && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
		resp.Body = &gzipBody{body: b}
	}
	return resp, nil
}

// body is a response's body: read to its end with nothing after it, it
// gives the connection back to the pool; closed before, it closes the
// connection.
type body struct {
	t    *Transport
	c    *conn
	r    *bufio.Reader
	rc   io.ReadCloser
	stop func() bool
	ctx  context.Context
	keep bool // the response allows the connection's reuse

	mu   sync.Mutex
	done bool
	eof  bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		if b.eof {
			return 0, io.EOF
		}
		return 0, errClosedBody
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.finish()
	case err != nil:
		if b.ctx.Err() != nil {
			err = b.ctx.Err()
		}
		b.finish()
	}
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.finish()
	}
	return nil
}

// finish ends the request: the connection goes back to the pool if the
// whole response was read, nothing follows it and the request's context
// did not interrupt it; otherwise it is closed.
func (b *body) finish() {
	b.done = true
	interrupted := !b.stop()
	reuse := b.eof && b.keep && !interrupted && b.r.Buffered() == 0
	if !reuse {
		b.c.Close() // first, so that closing the body reads nothing more
	}
	b.rc.Close()
	b.r.Reset(nil)
	readers.Put(b.r)
	if reuse {
		b.t.put(b.c)
	}
}

// gzipBody decompresses a body net/http's way, its reader made at the
// first read.
type gzipBody struct {
	body *body
	zr   *gzip.Reader
	err  error
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.zr == nil && g.err == nil {
		g.zr, g.err = gzip.NewReader(g.body)
	}
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.zr.Read(p)
	if err == io.EOF {
		// The compressed stream ended: read the body to its end so that
		// the connection can be reused.
		if _, derr := io.Copy(io.Discard, g.body); derr != nil {
			return n, derr
		}
	}
	return n, err
}

func (g *gzipBody) Close() error { return g.body.Close() }
