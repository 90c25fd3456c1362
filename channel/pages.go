package channel

import (
	"errors"
	"strconv"

	"github.com/presencekit/presence/engine"
	"github.com/presencekit/presence/phx"
	"github.com/valyala/fastjson"
)

// Pages: a joined socket, in either presence mode, pushes presence_list
// with {"limit": n, "after": c} and gets a page of the topic's presence:
//
//	{"presences": {key: {"metas": [...]}}, "next": c2, "count": K}
//
// presences in presence_state's format, up to n keys (1 to 1000, 100 when
// absent or null; fewer when the reply would take more than a quarter of
// Config.MaxQueueBytes) in key order (engine.ListPage: the order keys joined
// in), a key's metas never split; next is the cursor of the next page
// (its text, a JSON string) or null after the last, and after is absent,
// null or "" for the first page. count is the topic's keys at the page's
// instant. Walking from the first page to the last, every key present
// the whole time appears exactly once, and a key that joined or left
// meanwhile at most once. A bad limit is answered with {"reason":
// "invalid_limit"}, a cursor that is not one of the topic's with
// {"reason": "invalid_cursor"}, a payload that is not an object with
// {"reason": "malformed frame"}.
const (
	eventPresenceList = "presence_list"
	defaultPageLimit  = 100
)

// pageScratch is what answering one presence_list takes: the page and
// the response, reused through Server.pages so that a page costs one
// allocation, the frame that goes in the socket's queue.
type pageScratch struct {
	page             engine.Page
	response, framed []byte
}

// maxKeptPage is the largest response whose buffers go back to the pool:
// a page of 1,000 keys with large metas is not kept.
const maxKeptPage = 64 << 10

var errNotObject = errors.New("channel: presence_list payload is not a JSON object")

// pageRequest reads a presence_list payload.
func pageRequest(payload []byte) (limit int, after engine.PageCursor, err error) {
	limit = defaultPageLimit
	p := paramParsers.Get()
	defer paramParsers.Put(p)
	if len(payload) == 0 {
		return limit, after, nil
	}
	v, perr := p.ParseBytes(payload)
	if perr != nil || v.Type() != fastjson.TypeObject {
		return 0, after, errNotObject
	}
	if l := v.Get("limit"); l != nil && l.Type() != fastjson.TypeNull {
		n, ierr := l.Int()
		if ierr != nil || n < 1 || n > engine.MaxPageLimit {
			return 0, after, engine.ErrInvalidPageLimit
		}
		limit = n
	}
	if a := v.Get("after"); a != nil && a.Type() != fastjson.TypeNull {
		text, serr := a.StringBytes()
		if serr != nil {
			return 0, after, engine.ErrInvalidCursor
		}
		if err := after.UnmarshalText(text); err != nil {
			return 0, after, err
		}
	}
	return limit, after, nil
}

// appendPageResponse appends presence_list's ok response for page.
func appendPageResponse(dst []byte, page *engine.Page) []byte {
	dst = append(dst, `{"presences":`...)
	dst = phx.AppendPresenceRun(dst, page.Entries)
	dst = append(dst, `,"next":`...)
	if page.Next.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst, _ = page.Next.AppendText(dst) // hex digits: nothing to escape
		dst = append(dst, '"')
	}
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, int64(page.TopicKeys), 10)
	return append(dst, '}')
}

// pageReply returns the phx_reply frame that answers a presence_list in
// topic, or the reason to refuse it.
func (s *Server) pageReply(f *phx.Frame, topic string) (frame []byte, reason string) {
	limit, after, err := pageRequest(f.Payload)
	if err == nil {
		ps := s.pages.Get().(*pageScratch)
		defer s.putPage(ps)
		budget := s.pageBudget()
		for err = s.cfg.Presence.ListPage(&ps.page, topic, after, limit); err == nil; err = s.cfg.Presence.ListPage(&ps.page, topic, after, limit) {
			ps.response = appendPageResponse(ps.response[:0], &ps.page)
			ps.framed = phx.AppendReply(ps.framed[:0], true, ps.response)
			if len(ps.framed) <= budget || ps.page.Keys <= 1 {
				return newFrame(f.JoinRef, f.Ref, f.Topic, "phx_reply", ps.framed), ""
			}
			// Too big for the socket's queue to take beside other frames:
			// the same page, cut to fewer keys. Its next cursor carries on
			// from the last key it holds, so the walk loses nothing.
			limit = ps.page.Keys / 2
		}
	}
	switch {
	case errors.Is(err, engine.ErrInvalidPageLimit):
		return nil, reasonInvalidLimit
	case errors.Is(err, engine.ErrInvalidCursor):
		return nil, reasonInvalidCursor
	}
	return nil, reasonMalformed
}

// pageBudget is the most bytes a presence_list reply may take: a quarter
// of a socket's queue, so that a page of 1,000 keys with large metas
// cannot fill the queue and drop the connection.
func (s *Server) pageBudget() int { return s.cfg.MaxQueueBytes / 4 }

func (s *Server) putPage(ps *pageScratch) {
	if cap(ps.framed) > maxKeptPage {
		return
	}
	s.pages.Put(ps)
}

// presenceList answers a presence_list from a socket joined to the
// topic, m.
func (s *Socket) presenceList(f *phx.Frame, m membership) {
	frame, reason := s.srv.pageReply(f, m.topic)
	if reason != "" {
		s.refuseFrame(f, RefusedEvent, reason, nil)
		return
	}
	s.srv.stats.presenceLists.Add(1)
	s.enqueue(frame)
}

func newPageScratch() any { return new(pageScratch) }
