package channel

import (
	"bufio"
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

// maxHeld is what a batch holds before it writes out: it bounds both the
// pooled buffers and how long a client waits for the first frame.
const maxHeld = 64 << 10

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxHeld); return &b }}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return c.Conn.Write(p)
	}
	*c.held = append(*c.held, p...)
	if len(*c.held) >= maxHeld {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
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

// batchWriter is the ResponseWriter handed to websocket.Accept: its Hijack
// wraps the connection in a batchConn.
type batchWriter struct {
	http.ResponseWriter
	conn *batchConn
}

func (w *batchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: conn}
	// coder/websocket writes through brw.Writer, which writes to the raw
	// connection: what it holds (the 101 response) goes out first, and the
	// rest through the batchConn.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}
