/* The names of 0.1 that were renamed (lab_alloc_pages_r, lab_room_alloc_r,
 * lab_reason_str) are kept for one release: programs built against 0.1 still
 * compile (with a deprecation warning) and link, and each old name does what
 * its new name does. */
#include "check.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static void test_lab_alloc_pages_r_is_lab_alloc_pages_result(void)
{
    lab_arena *a = test_arena(64, 4, 8, 8, 8);
    lab_result r;
    lab_alloc_pages_r(a, LAB_GFP_KERNEL, 2, &r);
    REQUIRE(r.addr);
    CHECK_EQ(r.reason, LAB_R_NONE);
    CHECK_EQ(r.step, LAB_STEP_ZONE);
    lab_result big;
    lab_alloc_pages_r(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 5, &big);
    CHECK(big.addr == NULL);
    CHECK_EQ(big.reason, LAB_R_ORDER);
    lab_free_pages(a, r.addr, 2);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_lab_room_alloc_r_is_lab_room_alloc_result(void)
{
    lab_arena *a = test_arena(256, 4, 8, 8, 8);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.quota = 1;
    lab_room *room;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    lab_result r, second;
    lab_room_alloc_r(room, LAB_GFP_ATOMIC, &r);
    REQUIRE(r.addr);
    CHECK_EQ(r.reason, LAB_R_NONE);
    lab_room_alloc_r(room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &second);
    CHECK(second.addr == NULL);
    CHECK_EQ(second.reason, LAB_R_QUOTA);
    lab_room_free(room, r.addr);
    lab_room_destroy(room);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_lab_reason_str_is_lab_strreason(void)
{
    for (int reason = -1; reason <= LAB_R_COUNT; reason++)
        CHECK(strcmp(lab_reason_str(reason), lab_strreason(reason)) == 0);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_lab_alloc_pages_r_is_lab_alloc_pages_result);
    RUN(test_lab_room_alloc_r_is_lab_room_alloc_result);
    RUN(test_lab_reason_str_is_lab_strreason);
    return test_finish();
}
