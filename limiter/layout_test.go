package limiter

import (
	"testing"
	"unsafe"
)

// The layout the store's memory and its cache behaviour rest on (see
// shard and entry): a change that grows a record or a shard shows here.
func TestLayoutSizes(t *testing.T) {
	t.Parallel()
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the sizes are those of a 64-bit platform")
	}
	for name, c := range map[string]struct{ got, want uintptr }{
		"tenantState": {unsafe.Sizeof(tenantState{}), 64},
		"entry":       {unsafe.Sizeof(entry{}), 32},
		"shard":       {unsafe.Sizeof(shard{}), 128},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, want %d", name, c.got, c.want)
		}
	}
}
