// Noticing a client that has gone away while its request is still being computed. The HTTP
// library does not hand its handlers the socket, so the socket is found among the process's
// descriptors by its addresses (local port, peer address and port: unique while the
// connection is open, and the connection stays open while its handler runs).
#pragma once
#include <string>

namespace qs::serve {

class ConnectionWatch {
 public:
  ConnectionWatch(const std::string& remote_addr, int remote_port, int local_port);
  // True once the peer has closed the connection (or it failed). A peer that only sends
  // more data (a pipelined request) is not closed.
  bool closed() const;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace qs::serve
