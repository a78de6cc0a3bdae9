// Package certcheck checks the certificates mounted into a meshexp image
// before anything starts: each file readable and PEM, each certificate
// current and a CA, each key matching its certificate, and the issuer signed
// by a trust anchor (the anchor file may be a bundle of several). It prints one
// line per problem and exits 1 if any.
package certcheck

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// readCerts reads every certificate of a PEM file: one, or a bundle of trust
// anchors (the old and the new one during a trust-anchor rotation).
func readCerts(path string, found *problems) []*x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		found.add("%s: cannot read (%v); mount it read-only at that path", path, errors.Unwrap(err))
		return nil
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			found.add("%s: holds a PEM %q block; give certificates only", path, block.Type)
			return nil
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			found.add("%s: cannot parse certificate %d (%v)", path, len(certs)+1, err)
			return nil
		}
		certs = append(certs, checkCert(path, cert, found))
	}
	if len(certs) == 0 {
		found.add("%s: not a PEM certificate; give the certificate in PEM form", path)
	}
	return certs
}

func readCert(path string, found *problems) *x509.Certificate {
	certs := readCerts(path, found)
	if len(certs) == 0 {
		return nil
	}
	return certs[0]
}

func checkCert(path string, cert *x509.Certificate, found *problems) *x509.Certificate {
	now := time.Now()
	if now.After(cert.NotAfter) {
		found.add("%s: expired on %s; create new certificates (meshexp-build certs --force)", path, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		found.add("%s: not valid before %s; check the clock", path, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !cert.IsCA {
		found.add("%s: not a CA certificate; SPIRE needs a CA to sign with", path)
	}
	return cert
}

func readKey(path string, found *problems) crypto.Signer {
	data, err := os.ReadFile(path)
	if err != nil {
		found.add("%s: cannot read (%v); mount it at that path", path, errors.Unwrap(err))
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		found.add("%s: not a PEM private key", path)
		return nil
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		err = fmt.Errorf("PEM type %q is not a private key", block.Type)
	}
	if err != nil {
		found.add("%s: cannot parse the private key (%v)", path, err)
		return nil
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		found.add("%s: unsupported key type", path)
		return nil
	}
	return signer
}

func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	want, err1 := x509.MarshalPKIXPublicKey(cert.PublicKey)
	got, err2 := x509.MarshalPKIXPublicKey(key.Public())
	return err1 == nil && err2 == nil && bytes.Equal(want, got)
}

// Main runs the checks for the command line `args` (without the program
// name) and returns the exit code: 0 when every check passes, 1 otherwise.
func Main(args []string) int {
	flags := flag.NewFlagSet("meshexp-certcheck", flag.ContinueOnError)
	anchorPath := flags.String("anchor", "", "trust anchor certificate (PEM)")
	certPath := flags.String("cert", "", "signing CA certificate for SPIRE (PEM)")
	keyPath := flags.String("key", "", "private key of -cert (PEM)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	var found problems
	anchors := readCerts(*anchorPath, &found)
	if *certPath != "" {
		cert := readCert(*certPath, &found)
		key := readKey(*keyPath, &found)
		if cert != nil && key != nil && !keyMatches(cert, key) {
			found.add("%s: does not match %s; mount the key that belongs to that certificate", *keyPath, *certPath)
		}
		if cert != nil && len(anchors) > 0 {
			roots := x509.NewCertPool()
			for _, anchor := range anchors {
				roots.AddCert(anchor)
			}
			opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			if _, err := cert.Verify(opts); err != nil {
				found.add("%s: not signed by the trust anchor %s (%v); create the issuer from that anchor", *certPath, *anchorPath, err)
			}
		}
	}
	for _, line := range found {
		fmt.Fprintln(os.Stderr, "certcheck: "+line)
	}
	if len(found) > 0 {
		return 1
	}
	return 0
}
