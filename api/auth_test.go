package api

import "testing"

func TestAdminTokenIsCheckedWhateverTheSchemesCase(t *testing.T) {
	t.Parallel()
	auth := AdminAuth{Token: "s3cret"}
	for header, want := range map[string]bool{
		"Bearer s3cret": true, "bearer s3cret": true, "BEARER s3cret": true, "Bearer  s3cret": true,
		"Bearer wrong": false, "Basic s3cret": false, "Bearers3cret": false, "s3cret": false, "": false, "Bearer ": false,
	} {
		if got := auth.allows(header); got != want {
			t.Errorf("allows(%q) = %v, want %v", header, got, want)
		}
	}
	if (AdminAuth{}).allows("Bearer ") {
		t.Error("no token configured, yet an empty one passes")
	}
	if !(AdminAuth{Open: true}).allows("") {
		t.Error("an open admin API refuses")
	}
}
