package load

// Roster is one client's view of a room's presence, kept the way a real
// client keeps it: keys, each with the ids of its presences (a phx_ref, or
// a Centrifugo client id). A key whose last presence leaves is gone.
//
// The hooks are called as the view changes, from the goroutine that updates
// the Roster; set them before the client connects.
type Roster struct {
	// OnAdd is called when a presence id of key appears.
	OnAdd func(key, id string)
	// OnRemove is called when a presence id of key goes.
	OnRemove func(key, id string)
	// OnLen is called when the number of keys changes.
	OnLen func(n int)

	members map[string][]presence
	gen     uint32
	syncing bool
	pending []change
}

type presence struct {
	id  string
	gen uint32
}

type change struct {
	add     bool
	key, id string
}

// Len returns the number of keys.
func (r *Roster) Len() int { return len(r.members) }

// Has reports whether key has a presence.
func (r *Roster) Has(key string) bool { return len(r.members[key]) > 0 }

// Add records presence id of key; an id already there changes nothing.
func (r *Roster) Add(key, id string) {
	if r.syncing {
		r.pending = append(r.pending, change{true, key, id})
		return
	}
	r.add(key, id)
}

// Remove drops presence id of key; an id not there changes nothing.
func (r *Roster) Remove(key, id string) {
	if r.syncing {
		r.pending = append(r.pending, change{false, key, id})
		return
	}
	r.remove(key, id)
}

func (r *Roster) add(key, id string) {
	if r.members == nil {
		r.members = map[string][]presence{}
	}
	ps, ok := r.members[key]
	for i := range ps {
		if ps[i].id == id {
			ps[i].gen = r.gen
			return
		}
	}
	r.members[key] = append(ps, presence{id, r.gen})
	if r.OnAdd != nil {
		r.OnAdd(key, id)
	}
	if !ok && r.OnLen != nil {
		r.OnLen(len(r.members))
	}
}

func (r *Roster) remove(key, id string) {
	ps := r.members[key]
	for i := range ps {
		if ps[i].id != id {
			continue
		}
		ps = append(ps[:i], ps[i+1:]...)
		if len(ps) == 0 {
			delete(r.members, key)
		} else {
			r.members[key] = ps
		}
		if r.OnRemove != nil {
			r.OnRemove(key, id)
		}
		if len(ps) == 0 && r.OnLen != nil {
			r.OnLen(len(r.members))
		}
		return
	}
}

// Replace makes the roster what snapshot lists: snapshot calls add for
// each presence of the room. Presences not listed are removed, and the
// hooks see only what changed.
func (r *Roster) Replace(snapshot func(add func(key, id string))) {
	r.gen++
	snapshot(r.add)
	var stale []change
	for key, ps := range r.members {
		for _, p := range ps {
			if p.gen != r.gen {
				stale = append(stale, change{false, key, p.id})
			}
		}
	}
	for _, c := range stale {
		r.remove(c.key, c.id)
	}
}

// BeginSync holds back Add and Remove until EndSync: for protocols whose
// presence snapshot comes as a reply while join and leave events keep
// arriving.
func (r *Roster) BeginSync() { r.syncing = true }

// EndSync replaces the roster with snapshot, then replays the changes held
// back since BeginSync, in order. The events arrive in the order the
// server sent them, so what the snapshot already holds is added again
// without effect, and what happened after it is applied on top.
func (r *Roster) EndSync(snapshot func(add func(key, id string))) {
	r.syncing = false
	r.Replace(snapshot)
	pending := r.pending
	r.pending = nil
	for _, c := range pending {
		if c.add {
			r.add(c.key, c.id)
		} else {
			r.remove(c.key, c.id)
		}
	}
}
