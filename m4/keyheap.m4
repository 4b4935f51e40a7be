# keyheap.m4 - small configure helpers, written for keyheap.
#
# KH_CHECK_CFLAG(FLAG, VAR): append FLAG to VAR when the C compiler accepts it
# without a warning.  -Werror makes GCC and clang reject unknown flags instead
# of warning about them, so a flag is only ever used after it was proven.
AC_DEFUN([KH_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([kh_cv], [kh_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [kh_cv], [
    kh_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_LANG_PUSH([C])
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
                      [AS_VAR_SET([kh_cv], [yes])], [AS_VAR_SET([kh_cv], [no])])
    AC_LANG_POP([C])
    CFLAGS=$kh_save_CFLAGS])
  AS_VAR_IF([kh_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([kh_cv])
])

# KH_CHECK_CXXFLAG(FLAG, VAR): the same for the C++ compiler.
AC_DEFUN([KH_CHECK_CXXFLAG], [
  AS_VAR_PUSHDEF([kh_cv], [kh_cv_cxxflag_$1])
  AC_CACHE_CHECK([whether $CXX accepts $1], [kh_cv], [
    kh_save_CXXFLAGS=$CXXFLAGS
    CXXFLAGS="$CXXFLAGS -Werror $1"
    AC_LANG_PUSH([C++])
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
                      [AS_VAR_SET([kh_cv], [yes])], [AS_VAR_SET([kh_cv], [no])])
    AC_LANG_POP([C++])
    CXXFLAGS=$kh_save_CXXFLAGS])
  AS_VAR_IF([kh_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([kh_cv])
])

# KH_CHECK_LDFLAG(FLAG, VAR): append FLAG to VAR when a program links with it.
AC_DEFUN([KH_CHECK_LDFLAG], [
  AS_VAR_PUSHDEF([kh_cv], [kh_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [kh_cv], [
    kh_save_LDFLAGS=$LDFLAGS
    LDFLAGS="$LDFLAGS -Werror $1"
    AC_LANG_PUSH([C])
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
                   [AS_VAR_SET([kh_cv], [yes])], [AS_VAR_SET([kh_cv], [no])])
    AC_LANG_POP([C])
    LDFLAGS=$kh_save_LDFLAGS])
  AS_VAR_IF([kh_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([kh_cv])
])

# KH_REQUIRE_LDFLAG(FLAG, VAR, WHY): like KH_CHECK_LDFLAG, but keyheap cannot
# be built correctly without FLAG, so its absence stops configure.
AC_DEFUN([KH_REQUIRE_LDFLAG], [
  KH_CHECK_LDFLAG([$1], [kh_required_ldflags])
  AS_CASE([" $kh_required_ldflags "], [*" $1 "*], [$2="$$2 $1"],
          [AC_MSG_ERROR([the linker does not accept $1, which keyheap needs: $3])])
])
