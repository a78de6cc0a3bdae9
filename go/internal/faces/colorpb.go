package faces

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protowire"
)

// The color wire contract of upstream's pkg/color/color.proto (proto3, no
// package): service ColorService { Center, Edge }, both ColorRequest ->
// ColorResponse. The two messages are small enough to encode by hand, which
// keeps generated code and protoc out of the build.

// ColorRequest is `message ColorRequest { int32 row = 1; int32 column = 2; }`.
type ColorRequest struct{ Row, Column int32 }

// ColorResponse is `message ColorResponse { string color = 1; string rate =
// 2; repeated string errors = 3; }`.
type ColorResponse struct {
	Color, Rate string
	Errors      []string
}

// Marshal encodes the request; zero fields are omitted, as proto3 does.
func (m *ColorRequest) Marshal() ([]byte, error) {
	var b []byte
	if m.Row != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(m.Row)))
	}
	if m.Column != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(m.Column)))
	}
	return b, nil
}

// Unmarshal decodes the request, skipping unknown fields.
func (m *ColorRequest) Unmarshal(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, value []byte, varint uint64) {
		if typ != protowire.VarintType {
			return
		}
		switch num {
		case 1:
			m.Row = int32(varint)
		case 2:
			m.Column = int32(varint)
		}
	})
}

// Marshal encodes the response.
func (m *ColorResponse) Marshal() ([]byte, error) {
	var b []byte
	appendString := func(num protowire.Number, text string) {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, text)
	}
	if m.Color != "" {
		appendString(1, m.Color)
	}
	if m.Rate != "" {
		appendString(2, m.Rate)
	}
	for _, text := range m.Errors {
		appendString(3, text)
	}
	return b, nil
}

// Unmarshal decodes the response, skipping unknown fields.
func (m *ColorResponse) Unmarshal(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, value []byte, _ uint64) {
		if typ != protowire.BytesType {
			return
		}
		switch num {
		case 1:
			m.Color = string(value)
		case 2:
			m.Rate = string(value)
		case 3:
			m.Errors = append(m.Errors, string(value))
		}
	})
}

func eachField(b []byte, visit func(protowire.Number, protowire.Type, []byte, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var value []byte
		var varint uint64
		switch typ {
		case protowire.VarintType:
			varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			value, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		visit(num, typ, value, varint)
	}
	return nil
}

// wireCodec is registered as "proto", the codec gRPC uses for
// application/grpc: it marshals the two hand-encoded messages above.
type wireCodec struct{}

type wireMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func (wireCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(wireMessage)
	if !ok {
		return nil, fmt.Errorf("faces: cannot encode %T", v)
	}
	return m.Marshal()
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(wireMessage)
	if !ok {
		return fmt.Errorf("faces: cannot decode into %T", v)
	}
	return m.Unmarshal(data)
}

func (wireCodec) Name() string { return "proto" }

func init() { encoding.RegisterCodec(wireCodec{}) }

// ColorServer answers ColorService calls.
type ColorServer interface {
	Center(context.Context, *ColorRequest) (*ColorResponse, error)
	Edge(context.Context, *ColorRequest) (*ColorResponse, error)
}

func colorHandler(method string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, decode func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := new(ColorRequest)
		if err := decode(req); err != nil {
			return nil, err
		}
		if method == "Center" {
			return srv.(ColorServer).Center(ctx, req)
		}
		return srv.(ColorServer).Edge(ctx, req)
	}
}

// RegisterColorServer registers impl as /ColorService/Center and /Edge.
func RegisterColorServer(server *grpc.Server, impl ColorServer) {
	server.RegisterService(&grpc.ServiceDesc{
		ServiceName: "ColorService",
		HandlerType: (*ColorServer)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Center", Handler: colorHandler("Center")},
			{MethodName: "Edge", Handler: colorHandler("Edge")},
		},
		Metadata: "color.proto",
	}, impl)
}

// CallColor calls /ColorService/Center when center is true, else Edge.
func CallColor(ctx context.Context, conn *grpc.ClientConn, center bool, req *ColorRequest) (*ColorResponse, error) {
	method := "/ColorService/Edge"
	if center {
		method = "/ColorService/Center"
	}
	resp := new(ColorResponse)
	if err := conn.Invoke(ctx, method, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}
