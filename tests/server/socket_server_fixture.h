// A Server on a Unix socket in a fresh private directory: the fixture of the
// socket tests (server_test, hardening_test).  A derived fixture's SetUp()
// calls make_dir(), fills registry_ and cfg_, and its tests call start().
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "regexd/server/client.h"
#include "regexd/server/registry.h"
#include "regexd/server/server.h"

namespace regexd::test {

class SocketServerTest : public ::testing::Test {
 protected:
  // A new directory (mode 0700) named `prefix`PID_N, holding the socket
  // `socket_name`.  Keep both short: a Unix socket path has at most 107 bytes.
  // `options`: the registry's (registry_ is made here).
  void make_dir(const std::string& prefix, const std::string& socket_name,
                server::Registry::Options options = {}) {
    static int n = 0;
    dir_ = std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    registry_ = std::make_unique<server::Registry>(options);
    cfg_.socket = dir_ / socket_name;
  }
  void TearDown() override {
    server_.reset();
    registry_.reset();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    server_ = std::make_unique<server::Server>(cfg_, *registry_);
    auto st = server_->bind();
    ASSERT_TRUE(st.ok()) << st.error().message;
    server_->start();
  }
  std::unique_ptr<server::Client> client() {
    auto c = server::Client::connect(cfg_.socket.string(), std::chrono::seconds(20));
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    return c.ok() ? std::move(*c) : nullptr;
  }

  // A raw socket, for bytes no well-behaved client would send (reads time
  // out after 10 s).
  int raw_connect() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, cfg_.socket.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }

  std::filesystem::path dir_;
  server::ServerConfig cfg_;
  std::unique_ptr<server::Registry> registry_;
  std::unique_ptr<server::Server> server_;
};

}  // namespace regexd::test
