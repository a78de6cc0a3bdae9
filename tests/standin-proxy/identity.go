package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

type proxyState struct {
	mu        sync.Mutex
	ready     bool
	spiffeID  string
	notAfter  time.Time
	inbound   uint64
	outbound  uint64
	lastError string
}

// watchIdentity polls the Workload API until an SVID with the expected ID
// chains to the trust anchors, then refreshes it before it expires.
func watchIdentity(cfg config, state *proxyState) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cfg.trustAnchors)) {
		log.Fatalf("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS holds no PEM certificate")
	}
	for {
		leaf, err := fetchMatchingSVID(cfg, roots)
		state.mu.Lock()
		if err != nil {
			if err.Error() != state.lastError {
				log.Printf("identity: %v", err)
			}
			state.lastError = err.Error()
		} else {
			if !state.ready {
				// The real proxy's words: the image's bootstrap waits for them.
				log.Printf("Certified identity id=%s until %s", cfg.serverID, leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			state.ready, state.spiffeID, state.notAfter = true, cfg.serverID, leaf.NotAfter
		}
		state.mu.Unlock()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(time.Until(leaf.NotAfter) / 2)
		}
	}
}

func fetchMatchingSVID(cfg config, roots *x509.CertPool) (*x509.Certificate, error) {
	svids, err := fetchX509SVIDs(cfg.socket)
	if err != nil {
		return nil, err
	}
	for _, svid := range svids {
		if svid.spiffeID != cfg.serverID {
			continue
		}
		chain, err := x509.ParseCertificates(svid.certs)
		if err != nil || len(chain) == 0 {
			return nil, fmt.Errorf("SVID %s: bad certificate chain: %v", svid.spiffeID, err)
		}
		intermediates := x509.NewCertPool()
		for _, cert := range chain[1:] {
			intermediates.AddCert(cert)
		}
		_, err = chain[0].Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return nil, fmt.Errorf("SVID %s does not chain to the trust anchors: %v", svid.spiffeID, err)
		}
		return chain[0], nil
	}
	ids := make([]string, 0, len(svids))
	for _, svid := range svids {
		ids = append(ids, svid.spiffeID)
	}
	return nil, fmt.Errorf("no matching SVID found: want %s, agent offers %v", cfg.serverID, ids)
}

type svid struct {
	spiffeID string
	certs    []byte
}

// fetchX509SVIDs makes one FetchX509SVID call (gRPC over HTTP/2 without TLS
// on the agent's unix socket) and decodes the first response message.
func fetchX509SVIDs(socket string) ([]svid, error) {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		Protocols: new(http.Protocols),
	}
	transport.Protocols.SetUnencryptedHTTP2(true)
	defer transport.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://localhost/SpiffeWorkloadAPI/FetchX509SVID", bytes.NewReader(make([]byte, 5)))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("workload.spiffe.io", "true")
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("workload API at %s: %v", socket, err)
	}
	defer resp.Body.Close()
	header := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, header); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("workload API: no SVID yet (grpc-status %s: %s)",
			resp.Trailer.Get("grpc-status")+resp.Header.Get("grpc-status"),
			resp.Trailer.Get("grpc-message")+resp.Header.Get("grpc-message"))
	}
	message := make([]byte, binary.BigEndian.Uint32(header[1:]))
	if _, err := io.ReadFull(resp.Body, message); err != nil {
		return nil, fmt.Errorf("workload API: short message: %v", err)
	}
	return decodeX509SVIDResponse(message)
}

// decodeX509SVIDResponse reads field 1 (repeated X509SVID) of the response;
// in each, field 1 is the SPIFFE ID and field 2 the DER certificate chain.
func decodeX509SVIDResponse(message []byte) ([]svid, error) {
	var out []svid
	err := walkFields(message, func(number int, value []byte) error {
		if number != 1 {
			return nil
		}
		var item svid
		err := walkFields(value, func(inner int, data []byte) error {
			switch inner {
			case 1:
				item.spiffeID = string(data)
			case 2:
				item.certs = append([]byte(nil), data...)
			}
			return nil
		})
		out = append(out, item)
		return err
	})
	return out, err
}

// walkFields calls visit for every length-delimited field of a protobuf
// message and skips varint and fixed-width ones.
func walkFields(message []byte, visit func(number int, value []byte) error) error {
	for len(message) > 0 {
		key, n := binary.Uvarint(message)
		if n <= 0 {
			return errors.New("protobuf: bad field key")
		}
		message = message[n:]
		number, wire := int(key>>3), key&7
		switch wire {
		case 0:
			_, n = binary.Uvarint(message)
			if n <= 0 {
				return errors.New("protobuf: bad varint")
			}
			message = message[n:]
		case 1:
			message = message[min(8, len(message)):]
		case 5:
			message = message[min(4, len(message)):]
		case 2:
			length, n := binary.Uvarint(message)
			if n <= 0 || uint64(len(message)-n) < length {
				return errors.New("protobuf: bad length")
			}
			if err := visit(number, message[n:n+int(length)]); err != nil {
				return err
			}
			message = message[n+int(length):]
		default:
			return fmt.Errorf("protobuf: unsupported wire type %d", wire)
		}
	}
	return nil
}
