package channel

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
)

// batchConn is the network connection under a socket's WebSocket. While
// the socket's writer drains several frames, it holds what coder/websocket
// writes (one flush per message) and sends it in one write when the batch
// ends: a storm of small frames costs one system call per batch, not one
// per frame. Writes from other goroutines (pongs, close frames) go through
// the same lock, so bytes leave in the order they were written.
type batchConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	held    *[]byte // from heldBufs while holding
}

// maxHeld is what a batch holds before it writes out: it bounds the pooled
// buffers (one per socket that is writing) and how long a client waits for
// the first frame.
const maxHeld = 16 << 10

// maxFrameHeader is the longest header of a frame the server sends.
const maxFrameHeader = 10

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxHeld); return &b }}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return c.Conn.Write(p)
	}
	if len(*c.held)+len(p) > maxHeld {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= maxHeld {
			return c.Conn.Write(p) // a large frame goes out without a copy
		}
	}
	*c.held = append(*c.held, p...)
	return len(p), nil
}

// hold starts a batch: writes wait in a buffer until release.
func (c *batchConn) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		c.holding = true
		c.held = heldBufs.Get().(*[]byte)
	}
}

// release ends a batch and writes what it held.
func (c *batchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return nil
	}
	err := c.flushLocked()
	c.holding = false
	*c.held = (*c.held)[:0]
	heldBufs.Put(c.held)
	c.held = nil
	return err
}

func (c *batchConn) flushLocked() error {
	if len(*c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(*c.held)
	*c.held = (*c.held)[:0]
	return err
}

// Buffer sizes of an accepted connection. net/http hands over 4 KiB each;
// smaller ones keep an idle socket small: frames from clients are small
// (larger ones are read in more calls), and batchConn buffers writes.
const (
	readBufSize  = 1 << 10
	writeBufSize = 512
)

// batchWriter is the ResponseWriter handed to websocket.Accept: its Hijack
// wraps the connection in a batchConn, with small buffers.
type batchWriter struct {
	http.ResponseWriter
	conn   *batchConn
	status int // of a response Accept wrote instead of upgrading
}

func (w *batchWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *batchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: conn}
	// What brw holds goes first: the 101 response out, and any bytes the
	// client sent after its request in.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	r := bufio.NewReaderSize(w.conn, readBufSize)
	if n := brw.Reader.Buffered(); n > 0 {
		// net/http may have read past the request; those bytes must sit
		// in the new reader's buffer, where coder/websocket looks for them.
		early, _ := brw.Reader.Peek(n)
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), w.conn), max(readBufSize, n))
		if _, err := r.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return w.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(w.conn, writeBufSize)), nil
}
