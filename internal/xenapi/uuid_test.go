package xenapi

import "testing"

func TestIsUUID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"0f0e0d0c-0b0a-4908-8706-050403020100":    true,
		"0F0E0D0C-0B0A-4908-8706-05040302010A":    true,
		"":                                        false,
		"0f0e0d0c0b0a490887060504030201000000":    false,
		"0f0e0d0c-0b0a-4908-8706-05040302010":     false,
		"0f0e0d0c-0b0a-4908-8706-0504030201000":   false,
		"0a1b\x13c3d-0000-4000-8000-000000000001": false,
		"0f0e0d0g-0b0a-4908-8706-050403020100":    false,
		"{0f0e0d0c-0b0a-4908-8706-050403020100}":  false,
		"../../0b0a-4908-8706-050403020100abcd":   false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
