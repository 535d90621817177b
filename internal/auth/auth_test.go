package auth

import (
	"path/filepath"
	"testing"
	"time"
)

func TestPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"s3cret", true}, {"s3cre", false}, {"", false}, {"S3cret", false}} {
		got, err := CheckPassword(h, tc.pw)
		if err != nil || got != tc.want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", tc.pw, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$x$y$z$w", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA"} {
		if _, err := CheckPassword(bad, "x"); err == nil {
			t.Errorf("CheckPassword accepted malformed hash %q", bad)
		}
	}
}

func TestUsersPersist(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.json")
	u, err := OpenUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetPassword("root", "pw1"); err != nil {
		t.Fatal(err)
	}
	u2, err := OpenUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := u2.Check("root", "pw1"); !ok || err != nil {
		t.Fatalf("reloaded check = %v, %v", ok, err)
	}
	if _, err := u2.Check("nobody", "pw1"); err != ErrNoUser {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	th := NewThrottle()
	th.Now = func() time.Time { return now }
	for i := 0; i < th.Free; i++ {
		if ok, _ := th.Allow("a"); !ok {
			t.Fatalf("attempt %d throttled too early", i)
		}
		th.Fail("a")
	}
	if ok, _ := th.Allow("a"); !ok {
		t.Fatal("throttled before exceeding the free attempts")
	}
	th.Fail("a")
	if ok, wait := th.Allow("a"); ok || wait != time.Second {
		t.Fatalf("after %d failures: allow=%v wait=%v", th.Free+1, ok, wait)
	}
	if ok, _ := th.Allow("b"); !ok {
		t.Fatal("another source was throttled")
	}
	now = now.Add(2 * time.Second)
	if ok, _ := th.Allow("a"); !ok {
		t.Fatal("still throttled after the delay")
	}
	th.Succeed("a")
	th.Fail("a")
	if ok, _ := th.Allow("a"); !ok {
		t.Fatal("success did not clear the source")
	}
}

func TestUsersSeesOtherWriters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.json")
	daemon, _ := OpenUsers(path)
	if err := daemon.SetPassword("root", "a"); err != nil {
		t.Fatal(err)
	}
	tool, _ := OpenUsers(path)
	if err := tool.SetPassword("alice", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, err := daemon.Check("alice", "b"); !ok || err != nil {
		t.Fatalf("daemon did not pick up a user added by another process: %v %v", ok, err)
	}
}
