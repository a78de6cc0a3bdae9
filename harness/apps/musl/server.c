/* An HTTP/1.0 server on port 8080 that answers every request with one line, and
 * says so when it is told to stop. Built with musl, dynamically linked to it. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void stop(int signum) {
    (void)signum;
    static const char said[] = "app: got SIGTERM\n";
    write(1, said, sizeof said - 1);
    _exit(0);
}

int main(void) {
    signal(SIGTERM, stop);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(8080)};
    if (bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, 16) != 0) {
        perror("app: listen");
        return 1;
    }
    printf("app: listening as uid %d\n", (int)getuid());
    fflush(stdout);
    static const char answer[] =
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nhello from musl";
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        char request[2048];
        ssize_t got = read(client, request, sizeof request);
        if (got > 0) write(client, answer, sizeof answer - 1);
        close(client);
    }
}
