package peer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files names where WriteCerts put a node's certificate and key, and the
// CA's certificate.
func Files(dir, node string) (cert, key, ca string) {
	return filepath.Join(dir, node+".pem"), filepath.Join(dir, node+"-key.pem"), filepath.Join(dir, "ca.pem")
}

// WriteCerts writes, for each node, a certificate that bears the node's
// name (and loopback's addresses), valid for validFor (at most as long as
// the CA), signed by the CA in dir (see Files and CAKeyFile): the one found
// there, or a new one made and written there first. So the same dir can
// issue a certificate for a node that joins later. For tollgate dev, tests
// and a first cluster: a real one uses its own PKI. The CA's key is for
// issuing only: no node needs it.
func WriteCerts(dir string, nodes []string, validFor time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caCert, caKey, err := loadOrMakeCA(dir, now, validFor)
	if err != nil {
		return err
	}
	notAfter := now.Add(validFor)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	for _, node := range nodes {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: node},
			DNSNames: []string{node}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			NotBefore: now.Add(-time.Minute), NotAfter: notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		certFile, keyFile, _ := Files(dir, node)
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER); err != nil {
			return err
		}
	}
	return nil
}

// CAKeyFile is where WriteCerts keeps the key of the CA in dir.
func CAKeyFile(dir string) string { return filepath.Join(dir, "ca-key.pem") }

// loadOrMakeCA reads the CA in dir, or makes one valid for validFor and
// writes it there (certificate and key).
func loadOrMakeCA(dir string, now time.Time, validFor time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	_, _, caFile := Files(dir, "")
	keyFile := CAKeyFile(dir)
	certPEM, certErr := os.ReadFile(caFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		return parseCA(caFile, certPEM, keyPEM)
	case certErr == nil:
		return nil, nil, fmt.Errorf("%s exists without its key %s, so no certificate it would trust can be issued: use another dir, or move %s away to start a new CA", caFile, keyFile, caFile)
	case !errors.Is(certErr, fs.ErrNotExist):
		return nil, nil, certErr
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "tollgate cluster CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validFor),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, nil, err
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER); err != nil {
		return nil, nil, err
	}
	if err := writePEM(caFile, "CERTIFICATE", caDER); err != nil {
		return nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	return caCert, caKey, err
}

// parseCA decodes a CA's certificate and key, which must belong together.
func parseCA(caFile string, certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, fmt.Errorf("%s or its key: not PEM", caFile)
	}
	caCert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", caFile, err)
	}
	caKey, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s's key: %w", caFile, err)
	}
	if !caCert.IsCA || !caKey.PublicKey.Equal(caCert.PublicKey) {
		return nil, nil, fmt.Errorf("%s: not a CA certificate, or not the one its key belongs to", caFile)
	}
	return caCert, caKey, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path, kind string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
