package main

import (
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

// relay accepts redirected connections on addr and copies each, both ways,
// to the destination it had before iptables redirected it.
func relay(addr, direction, ownPort string, state *proxyState) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: %w", direction, err)
	}
	counter := &state.inbound
	if direction == "outbound" {
		counter = &state.outbound
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
			pipe(conn, target.String())
		}()
	}
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
