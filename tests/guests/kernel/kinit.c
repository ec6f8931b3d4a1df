/*
 * kinit: the init of the tests' initramfs (kernel_spec.lua), run by a
 * real Linux kernel as PID 1. It makes its console, then a known number
 * of a few syscalls, says how many on the console (the count the tests
 * compare with what the kernel ran), and powers the machine off.
 *
 *     kinit: getpid 1000 getppid 300 uname 7
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

enum { GETPID = 1000, GETPPID = 300, UNAME = 7 };

int main(void)
{
    /* the initramfs holds only this program: no /dev/console in it */
    mkdir("/dev", 0755);
    mknod("/dev/console", S_IFCHR | 0600, makedev(5, 1));
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    long sum = 0;
    struct utsname u;
    /* syscall(): libc may answer getpid without entering the kernel */
    for (int i = 0; i < GETPID; i++) {
        sum += syscall(SYS_getpid);
    }
    for (int i = 0; i < GETPPID; i++) {
        sum += syscall(SYS_getppid);
    }
    for (int i = 0; i < UNAME; i++) {
        sum += syscall(SYS_uname, &u);
    }
    printf("kinit: getpid %d getppid %d uname %d\n", GETPID, GETPPID, UNAME);
    printf("kinit: pid sum %ld, %s %s\n", sum, u.sysname, u.machine);
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 1;
}
