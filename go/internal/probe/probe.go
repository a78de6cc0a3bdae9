// Package probe is meshexp-probe: the workload's readiness probe, run inside its
// container (Docker's HEALTHCHECK, and the bootstrap before it says "workload
// ready"). It reads the probe the catalog declared from a JSON file baked into
// the image and answers as a Kubernetes readiness probe would: http (a status
// in 200-399, or the one expected), grpc (the standard health service says
// SERVING, or a named method answers OK), tcp (a connection is accepted), exec
// (a command exits 0). It runs as the workload's UID. It prints one line, the
// probe's own answer, and exits 0 when the probe passes and 1 when it fails.
//
// Connections go to 127.0.0.1, which the proxy's rules do not capture: the
// probe reaches the workload itself, not the proxy.
package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultSpec is where the image keeps its probe.
const DefaultSpec = "/opt/meshexp/workload/readiness.json"

// HealthCheck is the standard gRPC health service's method.
const HealthCheck = "/grpc.health.v1.Health/Check"

// Spec is one probe, as builder/config/models.py writes it.
type Spec struct {
	Kind   string `json:"kind"` // http | grpc | tcp | exec
	Port   int    `json:"port,omitempty"`
	Path   string `json:"path,omitempty"`
	Status int    `json:"status,omitempty"` // 0: any of 200-399
	// The default probe of an undeclared HTTP port: any answer below this passes
	// (a 404 from a server that has no "/" still shows it answers).
	StatusBelow int      `json:"status_below,omitempty"`
	Method      string   `json:"method,omitempty"`
	Command     []string `json:"command,omitempty"`
	UID         int      `json:"uid,omitempty"` // the probe runs as this UID (from root)
	Timeout     float64  `json:"timeout"`       // seconds
}

// Main runs the probe in the file args[0] names (default DefaultSpec).
func Main(args []string) int {
	path := DefaultSpec
	if len(args) > 0 {
		path = args[0]
	}
	spec, err := Read(path)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	if err := dropTo(spec.UID); err != nil {
		fmt.Println(err)
		return 2
	}
	answer, err := Run(spec)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(answer)
	return 0
}

// Read loads and checks a probe file.
func Read(path string) (Spec, error) {
	var spec Spec
	data, err := os.ReadFile(path)
	if err != nil {
		return spec, fmt.Errorf("meshexp-probe: cannot read %s (%v): rebuild the image with meshexp-build", path, errors.Unwrap(err))
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&spec); err != nil {
		return spec, fmt.Errorf("meshexp-probe: %s is not a probe (%v)", path, err)
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 1
	}
	return spec, nil
}

// Run probes once; the answer on success, the failure as the error.
func Run(spec Spec) (string, error) {
	timeout := time.Duration(spec.Timeout * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	address := net.JoinHostPort("127.0.0.1", strconv.Itoa(spec.Port))
	switch spec.Kind {
	case "http":
		return probeHTTP(ctx, address, spec)
	case "grpc":
		return probeGRPC(ctx, address, spec)
	case "tcp":
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", address)
		if err != nil {
			return "", fmt.Errorf("tcp %s: %v", address, shortError(err))
		}
		conn.Close()
		return fmt.Sprintf("tcp %s: connected", address), nil
	case "exec":
		return probeExec(ctx, spec)
	}
	return "", fmt.Errorf("meshexp-probe: unknown probe kind %q", spec.Kind)
}

func probeHTTP(ctx context.Context, address string, spec Spec) (string, error) {
	url := "http://" + address + spec.Path
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("http %s: %v", url, err)
	}
	request.Header.Set("User-Agent", "meshexp-probe")
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	response, err := client.Do(request)
	if err != nil {
		return "", fmt.Errorf("http GET %s: %v", spec.Path, shortError(err))
	}
	io.Copy(io.Discard, io.LimitReader(response.Body, 1<<16))
	response.Body.Close()
	code := response.StatusCode
	passed := code >= 200 && code < 400
	want := "200-399"
	if spec.Status != 0 {
		passed, want = code == spec.Status, strconv.Itoa(spec.Status)
	} else if spec.StatusBelow != 0 {
		passed, want = code < spec.StatusBelow, "below "+strconv.Itoa(spec.StatusBelow)
	}
	answer := fmt.Sprintf("http GET %s: %d", spec.Path, code)
	if !passed {
		return "", fmt.Errorf("%s (want %s)", answer, want)
	}
	return answer, nil
}

// probeGRPC makes one unary call over HTTP/2 without TLS, with an empty message
// (a valid request for the health service and for most methods).
func probeGRPC(ctx context.Context, address string, spec Spec) (string, error) {
	method := spec.Method
	if method == "" {
		method = HealthCheck
	}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	client := http.Client{Transport: &http.Transport{Protocols: protocols}}
	body := bytes.NewReader([]byte{0, 0, 0, 0, 0}) // uncompressed, length 0
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+address+method, body)
	if err != nil {
		return "", fmt.Errorf("grpc %s: %v", method, err)
	}
	request.Header.Set("Content-Type", "application/grpc")
	request.Header.Set("TE", "trailers")
	response, err := client.Do(request)
	if err != nil {
		return "", fmt.Errorf("grpc %s: %v", method, shortError(err))
	}
	defer response.Body.Close()
	payload, err := io.ReadAll(io.LimitReader(response.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("grpc %s: reading the answer: %v", method, shortError(err))
	}
	status := response.Trailer.Get("Grpc-Status")
	if status == "" { // a trailers-only answer
		status = response.Header.Get("Grpc-Status")
	}
	if status != "0" {
		message := response.Trailer.Get("Grpc-Message") + response.Header.Get("Grpc-Message")
		return "", fmt.Errorf("grpc %s: grpc-status %s %s", method, orNone(status), message)
	}
	if method == HealthCheck {
		serving, err := healthServing(payload)
		if err != nil {
			return "", fmt.Errorf("grpc %s: %v", method, err)
		}
		if !serving {
			return "", fmt.Errorf("grpc %s: NOT_SERVING", method)
		}
		return fmt.Sprintf("grpc %s: SERVING", method), nil
	}
	return fmt.Sprintf("grpc %s: grpc-status 0", method), nil
}

// healthServing reads HealthCheckResponse{status = 1 (SERVING)} from one frame.
func healthServing(payload []byte) (bool, error) {
	if len(payload) < 5 || payload[0] != 0 || int(binary.BigEndian.Uint32(payload[1:5])) != len(payload)-5 {
		return false, errors.New("the answer is not one uncompressed gRPC message")
	}
	message := payload[5:]
	// Field 1, varint: tag 0x08 then the value (the enum's values fit one byte).
	return len(message) == 2 && message[0] == 0x08 && message[1] == 1, nil
}

func probeExec(ctx context.Context, spec Spec) (string, error) {
	if len(spec.Command) == 0 {
		return "", errors.New("exec: no command")
	}
	command := exec.CommandContext(ctx, spec.Command[0], spec.Command[1:]...)
	output, err := command.CombinedOutput()
	line := lastLine(string(output))
	name := strings.Join(spec.Command, " ")
	if ctx.Err() != nil {
		return "", fmt.Errorf("exec %s: timed out after %gs", name, spec.Timeout)
	}
	if err != nil {
		return "", fmt.Errorf("exec %s: %v %s", name, err, line)
	}
	return fmt.Sprintf("exec %s: exit 0 %s", name, line), nil
}

// dropTo makes the probe the workload's UID before anything is probed (Docker
// runs a health check as the image's user, root): an exec probe's command then
// runs as the workload too.
func dropTo(uid int) error {
	if uid == 0 || os.Getuid() != 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("meshexp-probe: cannot drop supplementary groups: %v", err)
	}
	if err := syscall.Setgid(uid); err != nil {
		return fmt.Errorf("meshexp-probe: cannot become GID %d: %v", uid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("meshexp-probe: cannot become UID %d: %v", uid, err)
	}
	return nil
}

func lastLine(output string) string {
	lines := strings.Split(strings.TrimSpace(output), "\n")
	line := lines[len(lines)-1]
	if len(line) > 200 {
		line = line[:200]
	}
	return line
}

func orNone(status string) string {
	if status == "" {
		return "(none: not a gRPC server)"
	}
	return status
}

// shortError drops Go's wrapping ("Get \"http://...\": dial tcp ...: connect: ...").
func shortError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		return "timed out"
	}
	return err.Error()
}
