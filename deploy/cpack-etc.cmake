#  Run by CPack after it has installed drover into its staging directory
#  under the /usr prefix: move the configuration from usr/etc/drover to
#  etc/drover, so the package has /etc/drover/*.cfg (its conffiles).
set (staging "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
if (IS_DIRECTORY "${staging}/usr/etc/drover")
    file (MAKE_DIRECTORY "${staging}/etc")
    file (RENAME "${staging}/usr/etc/drover" "${staging}/etc/drover")
    file (REMOVE_RECURSE "${staging}/usr/etc")
endif ()
