package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"unsafe"
)

// The wire format. Every message starts with a version byte and a kind
// byte; integers are unsigned varints and strings are a varint length and
// the bytes. A message that does not decode completely is counted in
// Stats.BadMessages and ignored.
const (
	wireVersion = 3

	kindBatch     = 1 // a bucket's subject: one bucket's ordered deltas
	kindHeartbeat = 2 // node stream: each bucket's last sequence, and limits
	kindGoodbye   = 3 // node stream: graceful shutdown
	kindSyncReq   = 4 // to the owner: a snapshot page, please
	kindSyncPage  = 5 // from the owner: a snapshot page
	kindBroadcast = 6 // a channel broadcast

	opTrack   = 1
	opUntrack = 2
)

var errBadMessage = errors.New("cluster: malformed message")

// header is the part every node-stream, sync and broadcast message shares.
type header struct {
	kind byte
	node string
	inc  uint64
}

func appendHeader(b []byte, kind byte, node string, inc uint64) []byte {
	b = append(b, wireVersion, kind)
	b = appendString(b, node)
	return binary.AppendUvarint(b, inc)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes a message; the first error sticks and every later read
// returns zero values. With alias, strings point into the message instead
// of copies: they must not outlive it.
type reader struct {
	b     []byte
	err   error
	alias bool
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadMessage
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errBadMessage
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// bytes returns the next string as a slice into the message.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errBadMessage
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) string() string {
	b := r.bytes()
	if r.alias && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

// done reports the error, if any, and whether the message had trailing
// bytes.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadMessage
	}
	return r.err
}

func readHeader(r *reader) header {
	if v := r.byte(); v != wireVersion && r.err == nil {
		r.err = errBadMessage
	}
	h := header{kind: r.byte()}
	h.node = r.string()
	h.inc = r.uvarint()
	if h.node == "" || h.inc == 0 {
		if r.err == nil {
			r.err = errBadMessage
		}
	}
	return h
}

// op is one delta: a track (key, meta, ref) or an untrack of a socket's
// entry in a topic.
type op struct {
	kind   byte
	socket uint64
	topic  string
	key    string
	meta   []byte
	ref    uint64
}

func appendOp(b []byte, o *op) []byte {
	if o.kind == opTrack {
		return appendTrack(b, o.socket, o.topic, o.key, o.meta, o.ref)
	}
	b = append(b, o.kind)
	b = binary.AppendUvarint(b, o.socket)
	return appendString(b, o.topic)
}

// appendTrack appends a track op, its meta held as a string or as bytes.
func appendTrack[M string | []byte](b []byte, socket uint64, topic, key string, meta M, ref uint64) []byte {
	b = append(b, opTrack)
	b = binary.AppendUvarint(b, socket)
	b = appendString(b, topic)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(len(meta)))
	b = append(b, meta...)
	return binary.AppendUvarint(b, ref)
}

func readOp(r *reader) op {
	o := op{kind: r.byte(), socket: r.uvarint(), topic: r.string()}
	switch o.kind {
	case opTrack:
		o.key = r.string()
		o.meta = r.bytes()
		o.ref = r.uvarint()
		if o.ref == 0 || o.key == "" {
			r.err = errBadMessage
		}
	case opUntrack:
	default:
		r.err = errBadMessage
	}
	if o.topic == "" && r.err == nil {
		r.err = errBadMessage
	}
	return o
}

// batch is a decoded kindBatch: ops of topics in bucket, with the
// bucket's sequence numbers first, first+1, ...
type batch struct {
	bucket uint32
	first  uint64
	ops    []op
}

func (b *batch) last() uint64 { return b.first + uint64(len(b.ops)) - 1 }

// maxOpsPerMessage bounds what a decoder allocates for one message.
const maxOpsPerMessage = 1 << 20

// maxBuckets bounds the bucket numbers a decoder accepts.
const maxBuckets = 1 << 16

func readBucket(r *reader) uint32 {
	k := r.uvarint()
	if k >= maxBuckets && r.err == nil {
		r.err = errBadMessage
	}
	return uint32(k)
}

// readBatch decodes a batch into ops, reused.
func readBatch(r *reader, ops []op) batch {
	bt := batch{bucket: readBucket(r), first: r.uvarint()}
	n := r.uvarint()
	if n == 0 || n > maxOpsPerMessage || n > uint64(len(r.b)) || bt.first == 0 {
		r.err = errBadMessage
		return bt
	}
	bt.ops = slices.Grow(ops[:0], int(n))
	for i := uint64(0); i < n && r.err == nil; i++ {
		bt.ops = append(bt.ops, readOp(r))
	}
	return bt
}

// bseq is a bucket's last sequence.
type bseq struct {
	bucket uint32
	seq    uint64
}

func appendSeqs(b []byte, seqs []bseq) []byte {
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, s := range seqs {
		b = binary.AppendUvarint(b, uint64(s.bucket))
		b = binary.AppendUvarint(b, s.seq)
	}
	return b
}

func readSeqs(r *reader) []bseq {
	n := r.uvarint()
	if n > maxBuckets || n > uint64(len(r.b)) {
		r.err = errBadMessage
		return nil
	}
	var seqs []bseq
	if n > 0 {
		seqs = make([]bseq, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		seqs = append(seqs, bseq{bucket: readBucket(r), seq: r.uvarint()})
	}
	return seqs
}

// heartbeat is a kindHeartbeat or kindGoodbye.
type heartbeat struct {
	seqs    []bseq // each used bucket's last sequence published
	limits  uint64 // hash of the engine limits
	refTag  uint64
	buckets uint32 // Config.Buckets: topics hash alike only where it agrees
}

func appendHeartbeat(b []byte, h heartbeat) []byte {
	b = appendSeqs(b, h.seqs)
	b = binary.AppendUvarint(b, h.limits)
	b = binary.AppendUvarint(b, h.refTag)
	return binary.AppendUvarint(b, uint64(h.buckets))
}

func readHeartbeat(r *reader) heartbeat {
	return heartbeat{seqs: readSeqs(r), limits: r.uvarint(), refTag: r.uvarint(), buckets: readBucketCount(r)}
}

// readBucketCount reads a Config.Buckets: 1 to maxBuckets.
func readBucketCount(r *reader) uint32 {
	n := r.uvarint()
	if (n == 0 || n > maxBuckets) && r.err == nil {
		r.err = errBadMessage
	}
	return uint32(n)
}

// syncReq asks an owner for a page of its snapshot snap (0: take a new one
// of the entries in buckets, or of all its entries if all) from offset.
// The header names the requester; nbuckets is its Config.Buckets, and an
// owner with another one does not answer, since its buckets hold other
// topics.
type syncReq struct {
	req      uint64
	snap     uint64
	offset   uint64
	all      bool
	buckets  []uint32
	nbuckets uint32
}

func appendSyncReq(b []byte, s syncReq) []byte {
	b = binary.AppendUvarint(b, s.req)
	b = binary.AppendUvarint(b, s.snap)
	b = binary.AppendUvarint(b, s.offset)
	b = appendBool(b, s.all)
	b = binary.AppendUvarint(b, uint64(len(s.buckets)))
	for _, k := range s.buckets {
		b = binary.AppendUvarint(b, uint64(k))
	}
	return binary.AppendUvarint(b, uint64(s.nbuckets))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func readBool(r *reader) bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.err = errBadMessage
	return false
}

func readSyncReq(r *reader) syncReq {
	q := syncReq{req: r.uvarint(), snap: r.uvarint(), offset: r.uvarint(), all: readBool(r)}
	n := r.uvarint()
	if n > maxBuckets || n > uint64(len(r.b)) {
		r.err = errBadMessage
		return q
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		q.buckets = append(q.buckets, readBucket(r))
	}
	q.nbuckets = readBucketCount(r)
	return q
}

// syncPage is a page of an owner's snapshot: entries offset.. of snapshot
// snap. The first page (offset 0) carries seqs, the buckets' sequences
// the snapshot was taken at; a bucket asked for and missing there is at 0.
// snap 0 means the snapshot asked for is gone and the requester must
// start over.
type syncPage struct {
	req, snap, offset uint64
	seqs              []bseq
	more              bool
	entries           []op // all opTrack
}

func appendSyncPageHead(b []byte, p *syncPage, n int) []byte {
	b = binary.AppendUvarint(b, p.req)
	b = binary.AppendUvarint(b, p.snap)
	b = binary.AppendUvarint(b, p.offset)
	b = appendSeqs(b, p.seqs)
	b = appendBool(b, p.more)
	return binary.AppendUvarint(b, uint64(n))
}

func readSyncPage(r *reader) syncPage {
	p := syncPage{req: r.uvarint(), snap: r.uvarint(), offset: r.uvarint()}
	p.seqs = readSeqs(r)
	p.more = readBool(r)
	n := r.uvarint()
	if n > maxOpsPerMessage || n > uint64(len(r.b)) {
		r.err = errBadMessage
		return p
	}
	p.entries = make([]op, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		o := readOp(r)
		if o.kind != opTrack && r.err == nil {
			r.err = errBadMessage
		}
		p.entries = append(p.entries, o)
	}
	return p
}

// broadcastMsg is a channel broadcast; the header names the node it came
// from.
type broadcastMsg struct {
	topic, event string
	payload      []byte
}

func appendBroadcast(b []byte, m broadcastMsg) []byte {
	b = appendString(b, m.topic)
	b = appendString(b, m.event)
	return append(b, m.payload...)
}

func readBroadcast(r *reader) broadcastMsg {
	m := broadcastMsg{topic: r.string(), event: r.string()}
	if r.err == nil {
		m.payload = r.b
		r.b = nil
	}
	if m.topic == "" || m.event == "" {
		if r.err == nil {
			r.err = errBadMessage
		}
	}
	return m
}

// clone copies b's ops out of the message they were decoded from.
func (b batch) clone() batch {
	ops := make([]op, len(b.ops))
	for i, o := range b.ops {
		o.topic, o.key, o.meta = strings.Clone(o.topic), strings.Clone(o.key), bytes.Clone(o.meta)
		ops[i] = o
	}
	b.ops = ops
	return b
}
