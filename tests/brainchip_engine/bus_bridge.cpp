// akida_rt test harness: a command program that runs BrainChip's Akida Engine
// against a chip that lives in a Python process.
//
// Why a separate process (and not a shared library loaded with ctypes): the
// engine reports fatal errors through panic(), which we turn into a C++
// exception that must not cross a ctypes boundary; it polls registers in busy
// loops with its own 5 s timeouts, so a chip that never answers would freeze a
// ctypes caller holding the GIL; and it keeps global state between calls. A
// child process can be killed on a timeout, dies alone on a crash, and starts
// clean for every test.
//
// Transport: this program's stdin and a private duplicate of its stdout carry
// a small little-endian binary protocol; everything the engine or libc prints
// on stdout goes to stderr instead.
//
//   host -> bridge  command:  u8 op, u32 length, payload
//   bridge -> host  requests: 'R' u32 addr, u32 n            -> host sends n bytes
//                             'W' u32 addr, u32 n, n bytes   (no answer)
//                   results:  'D' u32 length, payload        (command done)
//                             'E' u32 length, message        (engine panicked)
//
// Commands (payload layout in brackets):
//   'I' create the HardwareDevice [desc string]           -> u8[4] HwVersion
//   'P' program [program binary]                          -> program summary
//   'B' set_batch_size [u32 n, u8 allocate_inputs]        -> u32 effective
//   'F' forward [inputs]                                  -> outputs
//   'T' fit [inputs, then u32 count, i32 labels]          -> outputs
//   'L' toggle_learn [u8 enable]                          -> empty
//   'M' learn_mem []                                      -> u32 words
//   'U' update_learn_mem [u32 words]                      -> empty
//   'Q' quit
// inputs  = u32 count, u8 dtype (0 uint8, 1 int8), u32 h, u32 w, u32 c,
//           then count * h * w * c bytes, row-major (h, w, c)
// outputs = u32 count, then per output u32 h, u32 w, u32 c, int32 values
//           row-major (h, w, c)

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "akd1000/memory_mapping.h"
#include "akida/dense.h"
#include "akida/hardware_device.h"
#include "akida/input_conversion.h"
#include "akida/program_info.h"
#include "akida/sparse.h"
#include "infra/hardware_driver.h"
#include "infra/system.h"

namespace {

int g_in_fd = 0;
int g_out_fd = -1;

// Raised by panic(); the command loop reports it and keeps serving.
struct EnginePanic : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The host went away: nothing left to do but exit.
[[noreturn]] void host_gone(const char* what) {
  std::fprintf(stderr, "bus_bridge: host pipe closed (%s)\n", what);
  _exit(3);
}

void read_exact(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t got = ::read(g_in_fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) host_gone("read");
    p += got;
    n -= static_cast<size_t>(got);
  }
}

void write_exact(const void* buf, size_t n) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t put = ::write(g_out_fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) host_gone("write");
    p += put;
    n -= static_cast<size_t>(put);
  }
}

void put_u32(std::vector<uint8_t>* out, uint32_t v) {
  const auto* b = reinterpret_cast<const uint8_t*>(&v);
  out->insert(out->end(), b, b + 4);
}

uint32_t get_u32(const std::vector<uint8_t>& in, size_t* pos) {
  if (*pos + 4 > in.size()) throw EnginePanic("bridge: truncated command");
  uint32_t v;
  std::memcpy(&v, in.data() + *pos, 4);
  *pos += 4;
  return v;
}

void send_frame(char op, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> frame;
  frame.reserve(payload.size() + 5);
  frame.push_back(static_cast<uint8_t>(op));
  put_u32(&frame, static_cast<uint32_t>(payload.size()));
  frame.insert(frame.end(), payload.begin(), payload.end());
  write_exact(frame.data(), frame.size());
}

// Every engine access becomes one request to the host, which owns the chip.
class BusBridgeDriver final : public akida::HardwareDriver {
 public:
  explicit BusBridgeDriver(std::string desc) : desc_(std::move(desc)) {}

  void read(uint32_t address, void* data, size_t size) const override {
    uint8_t head[9];
    head[0] = 'R';
    const auto n = static_cast<uint32_t>(size);
    std::memcpy(head + 1, &address, 4);
    std::memcpy(head + 5, &n, 4);
    write_exact(head, sizeof(head));
    read_exact(data, size);
  }

  void write(uint32_t address, const void* data, size_t size) override {
    std::vector<uint8_t> frame(9 + size);
    frame[0] = 'W';
    const auto n = static_cast<uint32_t>(size);
    std::memcpy(frame.data() + 1, &address, 4);
    std::memcpy(frame.data() + 5, &n, 4);
    std::memcpy(frame.data() + 9, data, size);
    write_exact(frame.data(), frame.size());
  }

  const char* desc() const override { return desc_.c_str(); }
  uint32_t scratch_memory() const override {
    return akida::soc::akd1000::kScratchBase;
  }
  uint32_t scratch_size() const override {
    return akida::soc::akd1000::kScratchSize;
  }
  uint32_t top_level_reg() const override {
    return akida::soc::akd1000::kTopLevelRegBase;
  }
  // Host buffers are never visible to the chip: inputs are copied to scratch.
  uint32_t akida_visible_memory() const override {
    return akida::soc::akd1000::kScratchBase;
  }
  uint32_t akida_visible_memory_size() const override {
    return akida::soc::akd1000::kScratchSize;
  }

 private:
  std::string desc_;
};

struct Session {
  std::unique_ptr<BusBridgeDriver> driver;
  akida::HardwareDevicePtr device;
  std::vector<uint8_t> program;  // the engine keeps a pointer into it
};

std::vector<akida::TensorConstPtr> parse_inputs(const std::vector<uint8_t>& in,
                                                size_t* pos) {
  const uint32_t count = get_u32(in, pos);
  if (*pos + 1 > in.size()) throw EnginePanic("bridge: truncated inputs");
  const uint8_t dtype = in[(*pos)++];
  const uint32_t h = get_u32(in, pos);
  const uint32_t w = get_u32(in, pos);
  const uint32_t c = get_u32(in, pos);
  const size_t one = static_cast<size_t>(h) * w * c;
  if (*pos + one * count > in.size()) throw EnginePanic("bridge: short inputs");
  const auto type =
      dtype == 1 ? akida::TensorType::int8 : akida::TensorType::uint8;
  std::vector<akida::TensorConstPtr> inputs;
  for (uint32_t i = 0; i < count; ++i) {
    const auto* data = reinterpret_cast<const char*>(in.data() + *pos);
    inputs.push_back(akida::Dense::copy(data, one, type, {h, w, c},
                                        akida::Dense::Layout::RowMajor));
    *pos += one;
  }
  return inputs;
}

int32_t element_as_int32(const akida::Dense& d, size_t i) {
  switch (d.type()) {
    case akida::TensorType::int32:
      return d.data<int32_t>()[i];
    case akida::TensorType::int16:
      return d.data<int16_t>()[i];
    case akida::TensorType::uint16:
      return d.data<uint16_t>()[i];
    case akida::TensorType::int8:
    case akida::TensorType::int4:
    case akida::TensorType::int2:
      return d.data<int8_t>()[i];
    case akida::TensorType::uint8:
    case akida::TensorType::uint4:
    case akida::TensorType::uint2:
    case akida::TensorType::bit:
      return d.data<uint8_t>()[i];
    default:
      throw EnginePanic("bridge: unsupported output tensor type");
  }
}

std::vector<uint8_t> encode_outputs(
    const std::vector<akida::TensorUniquePtr>& outputs) {
  std::vector<uint8_t> out;
  put_u32(&out, static_cast<uint32_t>(outputs.size()));
  for (const auto& tensor : outputs) {
    akida::DenseUniquePtr converted;
    const akida::Dense* dense = akida::conversion::as_dense(*tensor);
    if (dense == nullptr) {
      const auto* sparse = akida::conversion::as_sparse(*tensor);
      if (sparse == nullptr) throw EnginePanic("bridge: unknown output tensor");
      converted = akida::conversion::to_dense(*sparse);
      dense = converted.get();
    }
    if (dense->layout() != akida::Dense::Layout::RowMajor) {
      throw EnginePanic("bridge: output tensor is not row-major");
    }
    auto dims = dense->dimensions();
    uint32_t hwc[3] = {1, 1, 1};
    // Outputs are 3-D (h, w, c); fewer dimensions fill from the right.
    const size_t nd = dims.size();
    for (size_t k = 0; k < nd && k < 3; ++k) hwc[3 - nd + k] = dims[k];
    for (auto v : hwc) put_u32(&out, v);
    for (size_t i = 0; i < dense->size(); ++i) {
      put_u32(&out, static_cast<uint32_t>(element_as_int32(*dense, i)));
    }
  }
  return out;
}

void require_device(const Session& s) {
  if (!s.device) throw EnginePanic("bridge: send 'I' (create device) first");
}

std::vector<uint8_t> program_summary(const akida::ProgramInfo& info,
                                     const akida::HardwareDevice& device) {
  std::vector<uint8_t> out;
  for (auto shape : {info.input_dims(), info.output_dims()}) {
    uint32_t hwc[3] = {1, 1, 1};
    const size_t nd = shape.size();
    for (size_t k = 0; k < nd && k < 3; ++k) hwc[3 - nd + k] = shape[k];
    for (auto v : hwc) put_u32(&out, v);
  }
  out.push_back(info.input_is_dense() ? 1 : 0);
  out.push_back(info.output_is_dense() ? 1 : 0);
  out.push_back(info.activation_enabled() ? 1 : 0);
  out.push_back(info.can_learn() ? 1 : 0);
  out.push_back(info.input_sign() ? 1 : 0);
  out.push_back(info.input_bits());
  out.push_back(info.output_bits());
  out.push_back(0);
  put_u32(&out, info.number_of_passes());
  put_u32(&out, static_cast<uint32_t>(device.learn_mem_size()));
  return out;
}

std::vector<uint8_t> run_command(Session* s, char op,
                                 const std::vector<uint8_t>& in) {
  size_t pos = 0;
  std::vector<uint8_t> out;
  switch (op) {
    case 'I': {
      s->driver = std::make_unique<BusBridgeDriver>(
          std::string(in.begin(), in.end()));
      s->device = akida::HardwareDevice::create(s->driver.get());
      const auto v = s->device->version();
      out = {v.vendor_id, v.product_id, v.major_rev, v.minor_rev};
      break;
    }
    case 'P': {
      require_device(*s);
      // program() first unprograms the previous program, reading its buffer: keep that
      // buffer alive and unchanged until program() returns.
      std::vector<uint8_t> previous;
      previous.swap(s->program);
      s->program = in;
      const auto info = s->device->program(s->program.data(), s->program.size());
      out = program_summary(info, *s->device);
      break;
    }
    case 'B': {
      require_device(*s);
      const uint32_t n = get_u32(in, &pos);
      const bool alloc = pos < in.size() && in[pos] != 0;
      put_u32(&out, static_cast<uint32_t>(s->device->set_batch_size(n, alloc)));
      break;
    }
    case 'F': {
      require_device(*s);
      out = encode_outputs(s->device->forward(parse_inputs(in, &pos)));
      break;
    }
    case 'T': {
      require_device(*s);
      auto inputs = parse_inputs(in, &pos);
      const uint32_t n = get_u32(in, &pos);
      std::vector<int32_t> labels;
      for (uint32_t i = 0; i < n; ++i) {
        labels.push_back(static_cast<int32_t>(get_u32(in, &pos)));
      }
      out = encode_outputs(s->device->fit(inputs, labels));
      break;
    }
    case 'L': {
      require_device(*s);
      s->device->toggle_learn(!in.empty() && in[0] != 0);
      break;
    }
    case 'M': {
      require_device(*s);
      for (auto word : s->device->learn_mem()) put_u32(&out, word);
      break;
    }
    case 'U': {
      require_device(*s);
      std::vector<uint32_t> words(s->device->learn_mem_size());
      if (in.size() != words.size() * 4) {
        throw EnginePanic("bridge: learn memory size mismatch");
      }
      std::memcpy(words.data(), in.data(), in.size());
      s->device->update_learn_mem(words.data());
      break;
    }
    default:
      throw EnginePanic(std::string("bridge: unknown command '") + op + "'");
  }
  return out;
}

}  // namespace

// Host functions the engine expects from its platform (api/infra/system.h).
extern "C" {

void msleep(uint32_t duration) {
  std::this_thread::sleep_for(std::chrono::milliseconds(duration));
}

int64_t time_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
      .count();
}

void kick_watchdog() {}

void panic(const char* format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  throw EnginePanic(message);
}

}  // extern "C"

int main() {
  // Keep the protocol on a private descriptor; stray prints go to stderr.
  g_out_fd = dup(1);
  dup2(2, 1);
  Session session;
  while (true) {
    uint8_t head[5];
    read_exact(head, sizeof(head));
    uint32_t length;
    std::memcpy(&length, head + 1, 4);
    std::vector<uint8_t> payload(length);
    if (length > 0) read_exact(payload.data(), length);
    const char op = static_cast<char>(head[0]);
    if (op == 'Q') break;
    try {
      send_frame('D', run_command(&session, op, payload));
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      send_frame('E', std::vector<uint8_t>(msg.begin(), msg.end()));
    }
  }
  session.device.reset();
  return 0;
}
