/* be_floor_called.c - the floor with page operations that are real calls
 * (see be_floor.c). */
#define FLOOR_CALLED 1
#include "be_floor.c"
