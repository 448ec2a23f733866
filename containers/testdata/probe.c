/* probe: the program the Podman test execs inside its container. It does
 * nothing; its exec is what the sensor reports. */
int main(void) { return 0; }
