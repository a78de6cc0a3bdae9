package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const soOriginalDst = 80 // from linux/netfilter_ipv4.h

// relay accepts redirected connections on addr. Inbound ones the default
// policy admits are copied, both ways, to the destination they had before
// iptables redirected them; refused ones are answered as linkerd2-proxy does.
// Outbound ones are held open and never relayed: linkerd2-proxy waits for the
// policy controller's answer for each target, and the stand-in has none.
func relay(cfg config, direction string, state *proxyState) error {
	addr, ownPort := cfg.inboundAddr, cfg.inboundPort
	counter := &state.inbound
	if direction == "outbound" {
		addr, ownPort, counter = cfg.outboundAddr, cfg.outboundPort, &state.outbound
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: %w", direction, err)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			return fmt.Errorf("%s accept: %w", direction, err)
		}
		go func() {
			defer conn.Close()
			target, err := originalDestination(conn.(*net.TCPConn))
			if err != nil || target.Port == mustAtoi(ownPort) {
				log.Printf("%s: connection from %s was not redirected; closing", direction, conn.RemoteAddr())
				return
			}
			atomic.AddUint64(counter, 1)
			switch {
			case direction == "outbound":
				log.Printf("outbound: holding the connection to %s: no policy controller answered for it", target)
				_, _ = io.Copy(io.Discard, conn)
			case cfg.policy.admits(conn.RemoteAddr()):
				pipe(conn, target.String())
			default:
				refuse(conn, cfg.policy)
			}
		}()
	}
}

// refuse closes a connection the default policy refuses; an HTTP/1 request
// first gets the status the proxy would answer (deny closes at once). The
// request head is read whole and the connection closed gracefully, so that
// the client reads the answer rather than a reset.
func refuse(conn net.Conn, policy inboundPolicy) {
	if policy.name == "deny" {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	reader := bufio.NewReader(conn)
	head, err := reader.Peek(4)
	if err != nil || !isHTTPMethod(string(head)) {
		return
	}
	for {
		line, err := reader.ReadString('\n')
		if err != nil || line == "\r\n" || line == "\n" {
			break
		}
	}
	fmt.Fprintf(conn, "HTTP/1.1 %d Forbidden\r\nl5d-proxy-error: unauthorized by the default inbound policy %s\r\n"+
		"content-length: 0\r\nconnection: close\r\n\r\n", policy.refusalStatus(), policy.name)
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, reader)
}

func isHTTPMethod(head string) bool {
	for _, method := range []string{"GET ", "POST", "HEAD", "PUT ", "DELE", "PATC", "OPTI"} {
		if head == method {
			return true
		}
	}
	return false
}

func pipe(client net.Conn, target string) {
	server, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		log.Printf("relay to %s: %v", target, err)
		return
	}
	defer server.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
	}
	go copyHalf(server, client)
	go copyHalf(client, server)
	wg.Wait()
}

// originalDestination reads SO_ORIGINAL_DST (IPv4) from a redirected socket.
func originalDestination(conn *net.TCPConn) (*net.TCPAddr, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var addr syscall.RawSockaddrInet4
	var sysErr error
	err = raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(addr))
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst,
			uintptr(unsafe.Pointer(&addr)), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			sysErr = errno
		}
	})
	if err != nil {
		return nil, err
	}
	if sysErr != nil {
		return nil, sysErr
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&addr.Port))[:])
	return &net.TCPAddr{IP: net.IP(addr.Addr[:]), Port: int(port)}, nil
}

func mustAtoi(text string) int {
	value, _ := strconv.Atoi(text)
	return value
}
