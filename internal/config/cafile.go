package config

import (
	"crypto/x509"
	"encoding/pem"
)

// maxCAFile bounds what a ca_file may hold: a bundle of every public CA
// is about 200 KiB.
const maxCAFile = 4 << 20

// caFile reads an account's ca_file and checks that every PEM block in it
// is a certificate, so that a wrong file (a key, an empty file) is an error
// at check time, not a TLS failure at the first poll. A file is read once
// per load: accounts that inherit ca_file from defaults share its bytes.
func (b *builder) caFile(file field[string]) []byte {
	if !file.Set || file.Invalid {
		return nil
	}
	p, shown := b.path(file)
	if p == "" {
		bad(b, file, "must not be empty")
		return nil
	}
	if data, ok := b.cas[p]; ok {
		return data
	}
	data, err := readSmallFile(p, maxCAFile)
	if err != nil {
		bad(b, file, "cannot read %s: %v", shown, err)
		return nil
	}
	n := 0
	for rest := data; ; n++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			bad(b, file, "%s holds a PEM block of type %q; want only CERTIFICATE blocks", shown, blk.Type)
			return nil
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			bad(b, file, "%s: certificate %d does not parse: %v", shown, n+1, err)
			return nil
		}
	}
	if n == 0 {
		bad(b, file, "%s holds no PEM certificate", shown)
		return nil
	}
	if b.cas == nil {
		b.cas = map[string][]byte{}
	}
	b.cas[p] = data
	return data
}
