package certcheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type ca struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

// newCA makes a CA certificate named `name`, signed by `parent` (self-signed when nil).
func newCA(t *testing.T, name string, parent *ca) ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	signer, signerKey := template, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca{cert, der, key}
}

func writePEM(t *testing.T, path string, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, block := range blocks {
		data = append(data, pem.EncodeToMemory(block)...)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func certBlock(c ca) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.der} }

func TestAnIssuerOfEitherAnchorOfABundlePasses(t *testing.T) {
	dir := t.TempDir()
	old, next := newCA(t, "old anchor", nil), newCA(t, "new anchor", nil)
	issuer := newCA(t, "issuer", &next)
	keyDER, err := x509.MarshalECPrivateKey(issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	cert := writePEM(t, filepath.Join(dir, "issuer.crt"), certBlock(issuer))
	key := writePEM(t, filepath.Join(dir, "issuer.key"), &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	bundle := writePEM(t, filepath.Join(dir, "bundle.crt"), certBlock(old), certBlock(next))
	onlyOld := writePEM(t, filepath.Join(dir, "old.crt"), certBlock(old))

	if code := Main([]string{"-anchor", bundle, "-cert", cert, "-key", key}); code != 0 {
		t.Errorf("an issuer of the bundle's second anchor: exit %d, want 0", code)
	}
	if code := Main([]string{"-anchor", onlyOld, "-cert", cert, "-key", key}); code != 1 {
		t.Errorf("an issuer of another anchor: exit %d, want 1", code)
	}
	if code := Main([]string{"-anchor", bundle}); code != 0 {
		t.Errorf("a bundle of two current CAs alone: exit %d, want 0", code)
	}
}

func TestABundleWithAKeyInItIsRefused(t *testing.T) {
	dir := t.TempDir()
	anchor := newCA(t, "anchor", nil)
	mixed := writePEM(t, filepath.Join(dir, "mixed.crt"), certBlock(anchor), &pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})
	if code := Main([]string{"-anchor", mixed}); code != 1 {
		t.Errorf("an anchor file holding a key: exit %d, want 1", code)
	}
}
