// The C++ client of scripts/bench-tango, on cppTango (Debian's libtango-dev): round trips per second to one
// device, as many as fit in the given time, one request at a time.
//   tango_client DEVICE ATTRIBUTE SECONDS    prints "<read_attribute per s> <command_inout State per s>"
#include <tango.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace {

// Requests per second of `request`, repeated for `seconds` after a short warm-up.
double rate(const std::function<void()> &request, double seconds) {
    using clock = std::chrono::steady_clock;
    for (int i = 0; i < 100; ++i) request();
    const auto start = clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    long count = 0;
    while (clock::now() < end) {
        request();
        ++count;
    }
    return count / std::chrono::duration<double>(clock::now() - start).count();
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s DEVICE ATTRIBUTE SECONDS\n", argv[0]);
        return 2;
    }
    std::string attribute = argv[2];  // cppTango 9.3 takes it by non-const reference
    const double seconds = std::atof(argv[3]);
    try {
        std::string name = argv[1];
        Tango::DeviceProxy device(name);
        const double reads = rate([&] { Tango::DeviceAttribute value = device.read_attribute(attribute); }, seconds);
        const double commands = rate([&] { Tango::DeviceData state = device.command_inout("State"); }, seconds);
        std::printf("%.0f %.0f\n", reads, commands);
    } catch (const Tango::DevFailed &e) {
        std::fprintf(stderr, "%s: %s\n", argv[1], e.errors[0].desc.in());
        return 1;
    }
    return 0;
}
