package config

import (
	"crypto/rand"
	"crypto/sha256"
	"time"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// keyAlphabet is base62: keys are "tg_" and 43 characters, 256 bits from
// crypto/rand.
const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

const keyChars = 43 // 62^43 > 2^256

// newKeySecret returns a fresh API key.
func newKeySecret() string {
	b := make([]byte, 3, 3+keyChars)
	copy(b, "tg_")
	// rand.Text-style rejection sampling keeps every character uniform.
	var buf [64]byte
	for len(b) < 3+keyChars {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand since Go 1.24)
		for _, c := range buf {
			if c < 248 && len(b) < 3+keyChars { // 248 = 4 × 62
				b = append(b, keyAlphabet[c%62])
			}
		}
	}
	return string(b)
}

// keyIDLen is the length of a key's display prefix and id: "tg_" and 8
// characters, enough to tell keys apart and far too few to guess one.
const keyIDLen = 11

// NewKey returns a new key of tenant's, to be written, and its plaintext,
// which exists nowhere else: only its SHA-256 is kept.
func NewKey(tenant, name string, now time.Time) (*configv1.APIKey, string) {
	secret := newKeySecret()
	sum := sha256.Sum256([]byte(secret))
	return &configv1.APIKey{Id: secret[:keyIDLen], Tenant: tenant, Sha256: sum[:], Name: name, CreatedNanos: now.UnixNano()}, secret
}

// WithoutHash is what an answer may show of a key.
func WithoutHash(k *configv1.APIKey) *configv1.APIKey {
	k = proto.CloneOf(k)
	k.Sha256 = nil
	return k
}
