package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Users is the local credential file: user name -> password hash. It is
// small and changes rarely, so it is rewritten whole, atomically.
type Users struct {
	path string
	mu   sync.RWMutex
	m    map[string]string
	// stamp identifies the file version loaded, so that a change made by
	// another process (`xenithd user-add`) is picked up at the next login.
	stamp fileStamp
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

// refresh reloads the file if another process changed it.
func (u *Users) refresh() {
	st := stampOf(u.path)
	u.mu.RLock()
	same := st == u.stamp
	u.mu.RUnlock()
	if same {
		return
	}
	data, err := os.ReadFile(u.path)
	if err != nil {
		return
	}
	m := map[string]string{}
	if json.Unmarshal(data, &m) != nil {
		return
	}
	u.mu.Lock()
	u.m, u.stamp = m, st
	u.mu.Unlock()
}

// ErrNoUser means the user is not known locally.
var ErrNoUser = errors.New("no such local user")

// OpenUsers loads (or starts) the credential file at path.
func OpenUsers(path string) (*Users, error) {
	u := &Users{path: path, m: map[string]string{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return u, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(data, &u.m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	u.stamp = stampOf(path)
	return u, nil
}

// Has reports whether name is a local user.
func (u *Users) Has(name string) bool {
	u.refresh()
	u.mu.RLock()
	defer u.mu.RUnlock()
	_, ok := u.m[name]
	return ok
}

// Names lists the local users.
func (u *Users) Names() []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := make([]string, 0, len(u.m))
	for n := range u.m {
		out = append(out, n)
	}
	return out
}

// Check verifies a password; an unknown user returns ErrNoUser after doing
// the same work as a known one, so timing does not reveal which names exist.
func (u *Users) Check(name, pw string) (bool, error) {
	u.refresh()
	u.mu.RLock()
	hash, ok := u.m[name]
	u.mu.RUnlock()
	if !ok {
		_, _ = CheckPassword(dummyHash, pw)
		return false, ErrNoUser
	}
	return CheckPassword(hash, pw)
}

var dummyHash, _ = HashPassword("not a password")

// SetPassword creates the user or changes its password, durably.
func (u *Users) SetPassword(name, pw string) error {
	hash, err := HashPassword(pw)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	next := make(map[string]string, len(u.m)+1)
	for k, v := range u.m {
		next[k] = v
	}
	next[name] = hash
	if err := writeFileAtomic(u.path, next); err != nil {
		return err
	}
	u.m, u.stamp = next, stampOf(u.path)
	return nil
}

// Delete removes a local user.
func (u *Users) Delete(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	next := make(map[string]string, len(u.m))
	for k, v := range u.m {
		if k != name {
			next[k] = v
		}
	}
	if err := writeFileAtomic(u.path, next); err != nil {
		return err
	}
	u.m, u.stamp = next, stampOf(u.path)
	return nil
}

func writeFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
