// ordertrace-sim: the reference partner, CRM and MES on a real RabbitMQ (docs/sim.md).
#include "sim/sim_main.h"

int main(int argc, char** argv) { return ordertrace::sim::SimMain(argc, argv); }
