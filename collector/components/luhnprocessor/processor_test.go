package luhnprocessor

import "testing"

func TestMaskKeepsNumbersWhoseChecksumFails(t *testing.T) {
	cases := map[string]string{
		"paid with 4111 1111 1111 1111 today": "paid with <c> today",
		"card 5500-0000-0000-0004":            "card <c>",
		"order 4111111111111112 shipped":      "order 4111111111111112 shipped",
		"ts 1700000000000 ms":                 "ts 1700000000000 ms",
	}
	for in, want := range cases {
		if got, _ := Mask(in, "<c>"); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
