package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// TLSChain is a test PKI shaped like a public host's: a root CA, an
// intermediate CA and a leaf certificate for some DNS names (wildcards
// allowed): RSA-2048 CAs and an ECDSA P-256 leaf, as many public hosts
// have, so that verifying it costs what verifying a real one does.
type TLSChain struct {
	CAPEM   []byte // the root: what a client's ca_file names
	CertPEM []byte // the leaf, then the intermediate: what a server sends
	KeyPEM  []byte // the leaf's key
}

// NewTLSChain makes a chain whose leaf is valid for names.
func NewTLSChain(tb testing.TB, names ...string) TLSChain {
	tb.Helper()
	now := time.Now()
	serial := now.UnixNano() // one serial per certificate of an issuer
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey crypto.Signer, key crypto.Signer) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			tb.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			tb.Fatal(err)
		}
		return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	rsaKey := func() crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca := func(name string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	rootKey, interKey := rsaKey(), rsaKey()
	root, rootPEM := issue(ca("poller test root CA"), nil, nil, rootKey)
	inter, interPEM := issue(ca("poller test intermediate CA"), root, rootKey, interKey)
	_, leafPEM := issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, inter, interKey, leafKey)
	return TLSChain{
		CAPEM:   rootPEM,
		CertPEM: append(leafPEM, interPEM...),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// Certificate is the chain as a server presents it.
func (c TLSChain) Certificate(tb testing.TB) tls.Certificate {
	tb.Helper()
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}
