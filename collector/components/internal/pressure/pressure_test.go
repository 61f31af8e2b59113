package pressure

import "testing"

func TestLevelSplitsTheHeadroomAboveTheThresholdInThirds(t *testing.T) {
	cases := []struct {
		bytes, inodes float64
		want          int
	}{
		{84.9, 10, 0}, {85, 10, 1}, {89.9, 10, 1}, {90, 10, 2}, {95, 10, 3}, {10, 91, 1}, {10, 95, 2}, {10, 97, 3},
	}
	for _, c := range cases {
		if got := Level(c.bytes, c.inodes, 85, 90); got != c.want {
			t.Errorf("Level(%v, %v) = %d, want %d", c.bytes, c.inodes, got, c.want)
		}
	}
}
