package quota

import (
	"unicode"
	"unicode/utf8"
)

// CheckText checks a name that reaches logs, metrics, headers and other
// people's screens: 1 to max bytes of valid UTF-8 with no control
// characters (NUL, newlines, escapes) and no bidirectional formatting
// characters (U+202E and its kin, which make a name read as another). It
// runs on every check: ASCII takes a loop over bytes and nothing else.
func CheckText(field, s string, max int) *FieldError {
	switch {
	case s == "":
		return Invalid(field, "is required")
	case len(s) > max:
		return Invalid(field, "at most %d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= utf8.RuneSelf {
			return checkUnicode(field, s[i:])
		}
		if b < 0x20 || b == 0x7f {
			return Invalid(field, "must not hold control characters (byte %d is 0x%02x)", i, b)
		}
	}
	return nil
}

func checkUnicode(field, s string) *FieldError {
	if !utf8.ValidString(s) {
		return Invalid(field, "is not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return Invalid(field, "must not hold control characters (%U)", r)
		case unicode.Is(unicode.Bidi_Control, r):
			return Invalid(field, "must not hold bidirectional formatting characters (%U)", r)
		}
	}
	return nil
}
