package faces

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Smiley answers every GET with the smiley SMILEY names (default Grinning).
func Smiley(port int) error {
	p := NewProvider("Smiley")
	p.Key = envOr("SMILEY", "Grinning") // the metrics label is the name as given
	entity, used := SmileyNamed(p.Key)
	p.Infof("Using smiley %s", used)
	p.ServeMetrics()
	return ServeHTTP(p, port, func(Request) Response {
		return Response{Status: http.StatusOK, Data: map[string]any{"smiley": entity}}
	})
}

type colorService struct {
	provider *Provider
	color    string
}

func (s *colorService) answer(ctx context.Context, subrequest string, req *ColorRequest) (*ColorResponse, error) {
	call := Request{Subrequest: subrequest, Row: int(req.Row), Col: int(req.Column)}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		call.User = first(md.Get(s.provider.UserHeaderName))
		call.UserAgent = first(md.Get("user-agent"))
	}
	resp := s.provider.Handle(call, func(Request) Response {
		return Response{Status: http.StatusOK, Data: map[string]any{"color": s.color}}
	})
	switch resp.Status {
	case http.StatusOK:
		return &ColorResponse{Color: s.color}, nil
	case http.StatusTooManyRequests:
		return nil, status.Errorf(codes.ResourceExhausted, "rate limited: %s", strings.Join(resp.Errors, ", "))
	default:
		return nil, status.Errorf(codes.Internal, "failed to get color: %s", strings.Join(resp.Errors, ", "))
	}
}

func first(values []string) string {
	if len(values) > 0 {
		return values[0]
	}
	return ""
}

func (s *colorService) Center(ctx context.Context, req *ColorRequest) (*ColorResponse, error) {
	return s.answer(ctx, "center", req)
}

func (s *colorService) Edge(ctx context.Context, req *ColorRequest) (*ColorResponse, error) {
	return s.answer(ctx, "edge", req)
}

// Color answers ColorService gRPC calls with the color COLOR names (default
// blue). It speaks gRPC only, as upstream's does.
func Color(port int) error {
	p := NewProvider("Color")
	name := envOr("COLOR", "blue")
	p.Key = name
	service := &colorService{provider: p, color: ColorNamed(name)}
	p.Infof("Using color %s => %s", name, service.color)
	p.ServeMetrics()
	listener, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	RegisterColorServer(server, service)
	p.Infof("Starting gRPC server on %s", listener.Addr())
	return server.Serve(listener)
}

type face struct {
	provider      *Provider
	smileyService string
	colorService  string
	colorConn     *grpc.ClientConn
}

// withDefaultPort adds :80 to a host without a port, as upstream does for
// COLOR_SERVICE.
func withDefaultPort(address string) string {
	if _, _, err := net.SplitHostPort(address); err == nil {
		return address
	}
	if strings.Contains(address, ":") {
		return "[" + address + "]:80"
	}
	return address + ":80"
}

// smiley calls the smiley workload over HTTP, forwarding the subrequest,
// row, col, user and user agent; it returns the status and the smiley or the
// reason it has none.
func (f *face) smiley(req Request) (int, string) {
	url := fmt.Sprintf("http://%s/%s/?row=%d&col=%d", f.smileyService, req.Subrequest, req.Row, req.Col)
	call, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("couldn't create request to %s: %s", f.smileyService, err)
	}
	call.Header.Set(f.provider.UserHeaderName, req.User)
	call.Header.Set("User-Agent", req.UserAgent)
	resp, err := http.DefaultClient.Do(call)
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("couldn't make request to %s: %s", f.smileyService, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		detail := ""
		if len(body) > 0 {
			detail = fmt.Sprintf(" (%s)", body)
		}
		return resp.StatusCode, fmt.Sprintf("error from %s: %03d%s", f.smileyService, resp.StatusCode, detail)
	}
	var data map[string]any
	if err := json.Unmarshal(body, &data); err != nil {
		return resp.StatusCode, fmt.Sprintf("couldn't decode response from %s: %s", f.smileyService, err)
	}
	smiley, ok := data["smiley"].(string)
	if !ok {
		return http.StatusInternalServerError, fmt.Sprintf("no smiley in response from %s", f.smileyService)
	}
	return http.StatusOK, smiley
}

// color calls the color workload over gRPC: Center under /center, else Edge.
func (f *face) color(req Request) (int, string) {
	if f.colorConn == nil {
		return http.StatusInternalServerError, fmt.Sprintf("couldn't connect to %s", f.colorService)
	}
	ctx := metadata.NewOutgoingContext(context.Background(),
		metadata.New(map[string]string{strings.ToLower(f.provider.UserHeaderName): req.User}))
	resp, err := CallColor(ctx, f.colorConn, req.Subrequest == "center",
		&ColorRequest{Row: int32(req.Row), Column: int32(req.Col)})
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("couldn't get color from %s: %s", f.colorService, err)
	}
	return http.StatusOK, resp.Color
}

// answer asks both backends in parallel; a failed backend never fails the
// answer, it shows as a fallback smiley or color plus a line in `errors`.
func (f *face) answer(req Request) Response {
	type result struct {
		status int
		text   string
	}
	smileys, colors := make(chan result, 1), make(chan result, 1)
	go func() { s, t := f.smiley(req); smileys <- result{s, t} }()
	go func() { s, t := f.color(req); colors <- result{s, t} }()
	resp := Response{Status: http.StatusOK, Data: map[string]any{}}
	smiley, color := <-smileys, <-colors
	resp.Data["smiley"] = smiley.text
	if smiley.status != http.StatusOK {
		resp.AddError("smiley: " + smiley.text)
		resp.Data["smiley"] = fallbackSmiley(smiley.status)
	}
	resp.Data["color"] = color.text
	if color.status != http.StatusOK {
		resp.AddError("color: " + color.text)
		resp.Data["color"] = fallbackColor(color.status)
	}
	return resp
}

// Face answers every GET with a smiley from SMILEY_SERVICE (HTTP, default
// smiley) and a color from COLOR_SERVICE (gRPC, default color:80).
func Face(port int) error {
	p := NewProvider("Face")
	p.Key = "Face"
	f := &face{
		provider:      p,
		smileyService: envOr("SMILEY_SERVICE", "smiley"),
		colorService:  withDefaultPort(envOr("COLOR_SERVICE", "color")),
	}
	p.Infof("smileyService http://%s", f.smileyService)
	p.Infof("colorService grpc://%s", f.colorService)
	conn, err := grpc.NewClient(f.colorService, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.Warnf("couldn't create gRPC client for %s: %s", f.colorService, err)
	}
	f.colorConn = conn
	p.ServeMetrics()
	return ServeHTTP(p, port, f.answer)
}

// Main runs one workload and exits 1 with its error, as a command's main.
func Main(run func(port int) error) {
	if err := run(Port()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
