package pkgmeta

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRPMVerCmp(t *testing.T) {
	t.Parallel()
	// Cases from rpm's own test suite (tests/rpmvercmp.at) and the
	// classic corner cases; each is also checked reversed.
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "2.0", -1},
		{"2.0.1", "2.0.1", 0},
		{"2.0", "2.0.1", -1},
		{"1.0", "1.0.1", -1},
		{"2.0.1a", "2.0.1a", 0},
		{"2.0.1a", "2.0.1", 1},
		{"1.0a", "1.0", 1},
		{"1.0a", "1.0.1", -1}, // a letter run loses to a number run
		{"5.5p1", "5.5p1", 0},
		{"5.5p1", "5.5p2", -1},
		{"5.5p10", "5.5p1", 1},
		{"10xyz", "10.1xyz", -1},
		{"xyz10", "xyz10.1", -1},
		{"xyz.4", "xyz.4", 0},
		{"xyz.4", "8", -1},
		{"xyz.4", "2", -1},
		{"5.5p2", "5.6p1", -1},
		{"5.6p1", "6.5p1", -1},
		{"6.0.rc1", "6.0", 1},
		{"10b2", "10a1", 1},
		{"1.0aa", "1.0a", 1},
		{"10.0001", "10.1", 0}, // leading zeros are ignored
		{"10.0001", "10.0039", -1},
		{"4.999.9", "5.0", -1},
		{"20101121", "20101122", -1},
		{"2_0", "2_0", 0},
		{"2.0", "2_0", 0}, // only the separators differ
		{"a", "a", 0},
		{"a+", "a+", 0},
		{"a+", "a_", 0},
		{"+a", "+a", 0},
		{"+a", "_a", 0},
		{"+_", "+_", 0},
		{"_+", "+_", 0},
		{"_+", "_", 0},
		{"+", "_", 0},
		{"1.0~rc1", "1.0~rc1", 0},
		{"1.0~rc1", "1.0", -1}, // tilde: pre-release
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~rc1~git123", "1.0~rc1", -1},
		{"1.0~rc1", "1.0arc1", -1},
		{"1.0^", "1.0^", 0},
		{"1.0^", "1.0", 1}, // caret: post-release snapshot
		{"1.0^git1", "1.0", 1},
		{"1.0^git1", "1.0^git2", -1},
		{"1.0^git1", "1.01", -1},
		{"1.0^20160101", "1.0.1", -1},
		{"1.0^20160101^git1", "1.0^20160101", 1},
		{"1.0~rc1^git1", "1.0~rc1", 1},
		{"1.0^git1~pre", "1.0^git1", -1},
		{"12345678901234567890", "12345678901234567891", -1}, // no overflow
		{"", "", 0},
		{"", "1", -1},
		// The edges of the character classes: each of 0, 9, a, z, A
		// and Z is part of a run, not a separator.
		{"1.0", "1", 1},
		{"1.9", "1", 1},
		{"1a", "1", 1},
		{"1z", "1", 1},
		{"1A", "1", 1},
		{"1Z", "1", 1},
		{"1.@", "1", 0},
		{"1.[", "1", 0},
		{"1.`", "1", 0},
		{"1.{", "1", 0},
		{"1./", "1", 0},
		{"1.:", "1", 0},
	}
	for _, tt := range tests {
		if got := RPMVerCmp(tt.a, tt.b); got != tt.want {
			t.Errorf("RPMVerCmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := RPMVerCmp(tt.b, tt.a); got != -tt.want {
			t.Errorf("RPMVerCmp(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestParseEVR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want EVR
		str  string
	}{
		{"2-2.1", EVR{Version: "2", Release: "2.1"}, "2-2.1"},
		{"1:2-3", EVR{Epoch: "1", Version: "2", Release: "3"}, "1:2-3"},
		{"0:2-3", EVR{Epoch: "0", Version: "2", Release: "3"}, "2-3"},
		{"5", EVR{Version: "5"}, "5"},
		{"1.2.3-150400.24.33.1", EVR{Version: "1.2.3", Release: "150400.24.33.1"}, "1.2.3-150400.24.33.1"},
		{"a:b-c", EVR{Version: "a:b", Release: "c"}, "a:b-c"}, // not an epoch
	}
	for _, tt := range tests {
		got := ParseEVR(tt.in)
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(EVR{})); diff != "" {
			t.Errorf("ParseEVR(%q) (-want +got):\n%s", tt.in, diff)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseEVR(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestCompareEVR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"2-2.1", "3-3.1", -1},
		{"9-1", "10-1", -1},
		{"2-2.1", "2-2.1", 0},
		{"2-2.1", "2-2.2", -1},
		{"2-10.1", "2-9.1", 1},
		{"1:1-1", "2-1", 1}, // the epoch wins
		{"0:2-1", "2-1", 0}, // epoch 0 is no epoch
		{"2", "2-5.1", -1},  // a missing release sorts first, as in rpm
		{"2", "2-~1", -1},
		{"6-150400.2.2", "5-150400.2.1", 1},
	}
	for _, tt := range tests {
		if got := CompareEVR(ParseEVR(tt.a), ParseEVR(tt.b)); got != tt.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareEVR(ParseEVR(tt.b), ParseEVR(tt.a)); got != -tt.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestDebVersionCompare(t *testing.T) {
	t.Parallel()
	// Cases from dpkg's lib/dpkg/t/t-version.c.
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.0-1", "1.0-2", -1},
		{"1:1.0", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0~rc1", "1.0", -1},
		{"1.0~", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~~a", "1.0~~", 1},
		{"1.0a", "1.0", 1},
		{"1.0a", "1.0+", -1}, // letters sort before other characters
		{"1.0+b1", "1.0", 1},
		{"5.2.15-2+b8", "5.2.15-2+b13", -1},
		{"6.1.76-1", "6.1.69-1", 1},
		{"1.0-0", "1.0", 0},
		{"00.1", "0.1", 0},
		{"1.002", "1.2", 0},
	}
	for _, tt := range tests {
		if got := DebVersionCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("DebVersionCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := DebVersionCompare(tt.b, tt.a); got != -tt.want {
			t.Errorf("DebVersionCompare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}
